"""One demo request, what the sampling controls show, and the `settings.json` that reproduces its images.

Sampling settings are `scdm.settings.SamplingSettings` (None = the model card's default), resolved per model by
`Pipeline.resolve`. The demo adds what a request needs besides them (the label's corruption, the seed, the
number of samples), the server's limits on raw UI/API values, and `Controls`: what the controls show for the
loaded models' cards and which submitted values the user changed. `settings.json` (version 3) records per model
the resolved settings (`scdm.settings.identity`) and the weights digest (`Pipeline.digest`), and for an edit the
known image and the regenerated region as PNGs beside it (`EditRecord`).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from scdm.config import ModelCard, SamplerConfig
from scdm.serialize import from_json_value, to_json_value
from scdm.settings import SamplingSettings, identity

from .noise import NONE, check_corruption

MAX_SAMPLES = 8  # per model and request; the default is 4
MAX_STEPS = 250  # respaced sampler evaluations
MAX_GUIDANCE = 20.0
MAX_EXTRAPOLATION = 10.0  # the reference uses 0.8
MAX_SEED = 2**31 - 1
# 1: sampler, steps, guidance and precision only, no weights digest; 2: an edit names an example scene only;
# 3: an edit's known image and region are PNGs beside the file (any picture, not only the examples)
SETTINGS_VERSION = 3
CARD = "card"  # dropdown value "each model's card default" (shown where the two cards differ)
CONTROLS = ("sampler", "steps", "spacing", "guidance", "eta", "extrapolation", "dynamic_threshold", "precision")


def _number(name: str, value: Any, low: float, high: float, integer: bool) -> float | int:
    """A finite number in [low, high] (a whole number if `integer`), else a ValueError saying which."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if integer and value != int(value):
        raise ValueError(f"{name} must be a whole number, got {value}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}], got {value:g}")
    return int(value) if integer else value


def _unset(value: Any) -> bool:
    """None, an empty box or the CARD choice: leave the field to the card."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", CARD))


def parse_sampling(sampler: Any = None, steps: Any = None, spacing: Any = None, guidance: Any = None,
                   eta: Any = None, extrapolation: Any = None, dynamic_threshold: Any = None,
                   precision: Any = None) -> SamplingSettings:
    """Raw UI/API values -> SamplingSettings within the server's limits; None, "" and CARD mean the card's default."""
    def choice(value: Any) -> Any:
        return None if _unset(value) else value.strip().lower() if isinstance(value, str) else value

    def number(name: str, value: Any, low: float, high: float, integer: bool = False) -> Any:
        return None if _unset(value) else _number(name, value, low, high, integer)

    return SamplingSettings(
        sampler=choice(sampler), steps=number("steps", steps, 1, MAX_STEPS, True), spacing=choice(spacing),
        guidance=number("guidance", guidance, 0.0, MAX_GUIDANCE), eta=number("eta", eta, 0.0, 1.0),
        extrapolation=number("extrapolation", extrapolation, 0.0, MAX_EXTRAPOLATION),
        dynamic_threshold=number("dynamic threshold", dynamic_threshold, 0.0, 0.999),
        precision=choice(precision))


@dataclass(frozen=True)
class Request:
    """Everything besides the label and the models that fixes a request's images (same models -> same pixels)."""

    corruption: str = NONE  # a noise_sim kind applied to the label before sampling ("none": clean)
    severity: float = 0.3  # noise_sim severity in [0, 1]; 0.3 is clearly visible at 64 px without wiping the scene
    # seeded as the bench's label 0 (scdm.seeds): sample j from seed_for(seed, "sample", 0, j), the corruption
    # from seed_for(seed, "corruption", 0)
    seed: int = 0
    # 4 images per model: about 2.5-3.5 s per model on 2 CPU cores with the embedded cards' defaults (README "Demo")
    num_samples: int = 4
    sampling: SamplingSettings = field(default_factory=SamplingSettings)  # what was set; None = each card's default

    @classmethod
    def parse(cls, corruption: Any = NONE, severity: Any = 0.3, seed: Any = 0, num_samples: Any = 4,
              sampling: SamplingSettings | None = None) -> Request:
        """Validate raw UI/API values; a ValueError names the first bad one and the allowed range."""
        kind, sev = check_corruption(corruption, _number("severity", severity, 0.0, 1.0, False))
        return cls(corruption=kind, severity=float(sev), seed=int(_number("seed", seed, 0, MAX_SEED, True)),
                   num_samples=int(_number("number of samples", num_samples, 1, MAX_SAMPLES, True)),
                   sampling=sampling or SamplingSettings())


def card_defaults(card: ModelCard) -> SamplingSettings:
    """A card's sampling defaults (`SamplerConfig`) as settings."""
    return SamplingSettings(**{f.name: getattr(card.sampler, f.name) for f in fields(SamplerConfig)})


def plain(value: Any) -> Any:
    """An enum as its JSON value; anything else unchanged."""
    return value.value if hasattr(value, "value") else value


def _text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(plain(value))


@dataclass(frozen=True)
class Controls:
    """What the sampling controls show for the loaded models, and which submitted values are the user's changes.

    A control shows the server's setting (`python -m demo --precision`) if there is one, else the value the
    models' cards agree on; where the two cards differ it shows "each card's default" (`None` here: the CARD
    dropdown choice or an empty box) and each model keeps its own card's value until the user sets one.
    """

    cards: dict[str, SamplingSettings]  # slot -> that model's card defaults
    base: SamplingSettings = field(default_factory=SamplingSettings)  # the server's settings; None = card default

    @classmethod
    def of(cls, cards: dict[str, ModelCard], base: SamplingSettings | None = None) -> Controls:
        return cls({slot: card_defaults(card) for slot, card in cards.items()}, base or SamplingSettings())

    def shown(self, name: str) -> Any:
        """The value control `name` starts at; None where the cards differ (and the server set nothing)."""
        if getattr(self.base, name) is not None:
            return getattr(self.base, name)
        values = {getattr(s, name) for s in self.cards.values()}
        return values.pop() if len(values) == 1 else None

    def card_values(self, name: str) -> str:
        """The cards' defaults for `name`: "15" or "SCDM 15 · SDM 25"."""
        values = {slot: _text(getattr(s, name)) for slot, s in self.cards.items()}
        if len(set(values.values())) == 1:
            return next(iter(values.values()))
        return " · ".join(f"{slot} {v}" for slot, v in values.items())

    def changes(self, submitted: SamplingSettings) -> SamplingSettings:
        """What the user set: submitted values that differ from what the controls showed, on top of the server's."""
        out = {}
        for f in fields(SamplingSettings):
            value = getattr(submitted, f.name)
            shown = self.shown(f.name)
            if isinstance(value, float) and isinstance(shown, float) and math.isclose(value, shown, abs_tol=1e-9):
                continue  # a slider's round trip through the browser
            if f.name in CONTROLS and value is not None and value != shown:
                out[f.name] = value
        return replace(self.base, **out)

    def given(self, submitted: SamplingSettings) -> SamplingSettings:
        """API values: every value passed is set (on top of the server's); None leaves a field to the card."""
        return replace(self.base, **submitted.given())


def label_digest(label: np.ndarray) -> str:
    """sha256 of the (H, W) int64 label bytes: ties a settings file to its label PNG."""
    arr = np.ascontiguousarray(np.asarray(label, dtype=np.int64))
    return hashlib.sha256(arr.tobytes() + repr(arr.shape).encode()).hexdigest()


def image_digest(image: np.ndarray) -> str:
    """sha256 of the (H, W, 3) uint8 image bytes: ties a settings file to an edit's image PNG."""
    arr = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
    return hashlib.sha256(arr.tobytes() + repr(arr.shape).encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class EditRecord:
    """An edit in `settings.json` (SDM Eq. 12 semantic editing): what was kept and what was regenerated."""

    repainted_pixels: int  # pixels regenerated (the repainted region grown by `editing.GROW`)
    image_file: str | None = None  # the known image, an RGB PNG at the model size beside the JSON (version 3)
    image_sha256: str | None = None  # `image_digest` of it
    mask_file: str | None = None  # the regenerated region, an 8-bit PNG beside the JSON, 255 = regenerated
    example: int | None = None  # the embedded-world test scene the edit started from (version 2: the only record)
    split: str = "test"  # the world split of `example`
    source: str = ""  # what the user edited, e.g. "example 3" or "your picture (photo.png)"


@dataclass(frozen=True)
class SavedModel:
    """One model's entry in `settings.json`."""

    name: str  # the card's name
    digest: str | None  # Pipeline.digest of the weights and card; None in version-1 files
    settings: SamplingSettings  # resolved (version 2); version 1: sampler, steps, guidance and precision only


@dataclass(frozen=True)
class SavedRequest:
    """A `settings.json` read back (`read_settings`)."""

    version: int
    request: Request
    models: dict[str, SavedModel]  # slot ("SCDM", "SDM") -> entry
    label_file: str  # the clean label (before the corruption), an index PNG of raw ids beside the JSON
    label_sha256: str | None
    edit: EditRecord | None  # semantic editing


def settings_json(request: Request, *, models: dict[str, SavedModel], label: np.ndarray, label_file: str,
                  edit: EditRecord | None = None) -> str:
    """The JSON written next to a result: per model its resolved settings and weights digest, what the user set,
    the label it used and how to replay it."""
    doc = {
        "version": SETTINGS_VERSION,
        "request": {"corruption": request.corruption, "severity": request.severity, "seed": request.seed,
                    "num_samples": request.num_samples},
        "requested": {k: plain(v) for k, v in request.sampling.given().items()},  # user/server; rest: each card
        "models": {slot: {"name": m.name, "digest": m.digest, "settings": identity(m.settings)}
                   for slot, m in models.items()},
        "label_file": label_file,
        "label_sha256": label_digest(label),
        "edit": None if edit is None else {k: v for k, v in to_json_value(edit).items() if v is not None},
        "reproduce": "demo.replay.replay('settings.json', scdm.load_pipeline(<model>)) -> the same images",
    }
    return json.dumps(doc, indent=1)


# settings.json as written (`settings_json`), read through scdm.serialize: every value type-checked, unknown keys
# refused, errors name the field (`settings.json: models.SCDM.settings.steps: expected int or null, got str '25'`).

@dataclass(frozen=True, kw_only=True)
class _RequestDoc:
    corruption: str
    severity: float
    seed: int
    num_samples: int


@dataclass(frozen=True, kw_only=True)
class _ModelDoc:
    name: str
    digest: str
    settings: SamplingSettings  # resolved: every field given


@dataclass(frozen=True, kw_only=True)
class _DocV2:
    """Versions 2 and 3 (version 3 adds the edit's image and mask files)."""

    version: int
    request: _RequestDoc
    requested: SamplingSettings = field(default_factory=SamplingSettings)  # what the user/server set
    models: dict[str, _ModelDoc]
    label_file: str
    label_sha256: str | None = None
    edit: EditRecord | None = None
    reproduce: str = ""


@dataclass(frozen=True, kw_only=True)
class _SettingsV1:
    corruption: str
    severity: float
    sampler: str
    steps: int
    guidance: float
    seed: int
    num_samples: int


@dataclass(frozen=True, kw_only=True)
class _DocV1:
    """Version 1: one settings table with sampler, steps and guidance, one precision for every model, no digest."""

    version: int
    settings: _SettingsV1
    models: dict[str, str]  # slot -> model name
    precision: str | None = None
    label_file: str
    label_sha256: str | None = None
    edit: EditRecord | None = None
    reproduce: str = ""


def read_settings(text: str) -> SavedRequest:
    """A `settings_json` document back (version 2, or version 1 from older demos), validated again."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not a settings file written by the demo: invalid JSON ({e})") from None
    if not isinstance(doc, dict) or "version" not in doc:
        raise ValueError("not a settings file written by the demo (expected a JSON object with 'version', "
                         "'request' and 'models')")
    version = doc["version"]
    if version not in range(1, SETTINGS_VERSION + 1) or isinstance(version, bool):
        raise ValueError(f"settings.json version {version!r} is not supported (this demo reads 1 to "
                         f"{SETTINGS_VERSION}); replay it with the demo that wrote it")
    try:
        return _read_v1(from_json_value(_DocV1, doc, "")) if version == 1 else _read_v2(from_json_value(_DocV2, doc, ""))
    except ValueError as e:
        raise ValueError(f"settings.json: {e}") from None


def _read_v2(doc: _DocV2) -> SavedRequest:
    r = doc.request
    try:
        request = Request.parse(r.corruption, r.severity, r.seed, r.num_samples, doc.requested)
    except ValueError as e:
        raise ValueError(f"request: {e}") from None
    everything = {f.name for f in fields(SamplingSettings)}
    for slot, m in doc.models.items():
        if m.settings.given().keys() != everything:
            raise ValueError(f"models.{slot}.settings: the {slot} settings are incomplete (expected every field of "
                             f"scdm.SamplingSettings)")
    models = {slot: SavedModel(m.name, m.digest, m.settings) for slot, m in doc.models.items()}
    return SavedRequest(doc.version, request, models, doc.label_file, doc.label_sha256, doc.edit)


def _read_v1(doc: _DocV1) -> SavedRequest:
    """Version 1: settings {corruption, severity, sampler, steps, guidance, seed, num_samples}, one precision."""
    raw = doc.settings
    precision = "bf16" if doc.precision == "bf16" else "fp32"
    try:
        sampling = parse_sampling(raw.sampler, raw.steps, guidance=raw.guidance, precision=precision)
        request = Request.parse(raw.corruption, raw.severity, raw.seed, raw.num_samples, sampling)
    except ValueError as e:
        raise ValueError(f"settings: {e}") from None
    models = {slot: SavedModel(name, None, sampling) for slot, name in doc.models.items()}
    return SavedRequest(1, request, models, doc.label_file, doc.label_sha256, doc.edit)
