"""What a benchmark run is: dataset x models x corruptions x severities x seeds x sampler settings.

Every choice is an Enum; a config file (JSON or TOML) holds the same fields as `BenchConfig` (and optionally
`format = 1`), read and type-checked by `scdm.serialize`. A sampler setting is `scdm.settings.SamplingSettings`:
a `[[samplers]]` table gives any subset of its fields, and every field it leaves out is the model card's default
(an empty table is the card's own sampler).
"""
from __future__ import annotations

import dataclasses
import enum
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scdm.config import Precision, Sampler, Spacing  # noqa: F401  (part of this module's API)
from scdm.serialize import from_json_value, split_format, to_json_value
from scdm.settings import SamplingSettings


class DatasetKind(str, enum.Enum):
    """Dataset layouts the bench reads (docs/method.md §7 encodings)."""

    EMBEDDED = "embedded"  # the procedural world of `scdm.world`; needs no files
    ADE20K = "ade20k"  # ADEChallengeData2016: images/<split>/*.jpg, annotations/<split>/*.png
    CELEBAMASK_HQ = "celebamask_hq"  # SDM layout: <split>/images, <split>/labels
    COCO_STUFF = "coco_stuff"  # SPADE layout: <split>_img, <split>_label, <split>_inst
    CITYSCAPES = "cityscapes"  # leftImg8bit/<split>/<city>, gtFine/<split>/<city> (labelIds, instanceIds)
    FOLDER = "folder"  # images/, labels/ (PNG), optional instances/ (PNG), matched by file stem
    LABELS = "labels"  # label maps alone (PNG: raw ids, palette or colour-coded); no photos, so no FID/KID rows

    @property
    def has_photos(self) -> bool:
        """False for a label-only folder: no real images, so no Fréchet/kernel distances and no reference rows."""
        return self != DatasetKind.LABELS


class Reference(str, enum.Enum):
    """Which real images the Fréchet and kernel distances compare against."""

    TRAIN = "train"  # an independent draw (training split): the `real` row then shows the metric's floor
    EVAL = "eval"  # the evaluated images themselves: the papers' protocol (`real` then scores ~0)


class ModelKind(str, enum.Enum):
    """What produces the images of one table row."""

    DIFFUSION = "diffusion"  # a `scdm.load_pipeline` source
    REAL = "real"  # the dataset's held-out images, scored like samples (clean labels only)
    FLAT_PAINT = "flat-paint"  # every pixel painted with its class's mean training colour
    PLUGIN = "plugin"  # any label-to-image model: `source` = "package.module:factory" or "file.py:factory" (bench/plugin.py)

    @property
    def generative(self) -> bool:
        """True for rows a model samples (samples per label, diversity samples); False for the reference rows."""
        return self in (ModelKind.DIFFUSION, ModelKind.PLUGIN)


class Mode(str, enum.Enum):
    """Whether Label Diffusion runs at generation time (`SamplingSettings.label_diffusion`)."""

    AUTO = "auto"  # as the checkpoint's card says (SCDM cards: on, SDM cards: off)
    SCDM = "scdm"  # diffuse the user's label at every step (needs a Label Diffusion schedule)
    SDM = "sdm"  # condition on the label as given

    @property
    def label_diffusion(self) -> bool | None:
        """The `SamplingSettings.label_diffusion` this mode asks for; None = the card's."""
        return {Mode.AUTO: None, Mode.SCDM: True, Mode.SDM: False}[self]


class Metric(str, enum.Enum):
    """Scores in the table; the offline feature space is never called FID."""

    FID = "fid"  # Inception-v3 Fréchet distance (needs local Inception weights)
    KID = "kid"  # Inception-v3 kernel distance, better at small N
    FD_EFFNETL0 = "fd_effnetl0"  # Fréchet distance in EfficientNet-Lite0 ImageNet features (offline)
    KID_EFFNETL0 = "kid_effnetl0"  # kernel distance in the same features
    LPIPS_DIVERSITY = "lpips_diversity"  # mean pairwise LPIPS (AlexNet) over samples of one label
    FEAT_DIVERSITY = "feat_diversity"  # mean pairwise distance of normalised EfficientNet-Lite0 features
    MIOU = "miou"  # segmenter on the samples vs the clean label
    MIOU_NOISY = "miou_noisy"  # segmenter on the samples vs the corrupted label
    HF_ENERGY = "hf_energy"  # mean |x - 3x3 box blur of x| in 8-bit units: grain (above real) or lost texture (below)


@dataclass(frozen=True)
class DatasetSpec:
    """Where labels and real images come from."""

    kind: DatasetKind = DatasetKind.EMBEDDED  # the default needs no download
    root: str | None = None  # dataset folder; unused by the embedded world
    split: str | None = None  # evaluated split; None = the layout's validation/test split
    resolution: int = 64  # short side after resizing (labels nearest, images bicubic)
    world_scenes: int = 50  # embedded world: test scenes (folders use every file); sized for the 20-minute CPU run
    reference: Reference = Reference.TRAIN  # FID/KID reference images; EVAL reproduces the papers
    reference_images: int | None = None  # size of the TRAIN reference; None = as many as evaluated labels
    flat_paint_images: int = 200  # training images averaged for flat-paint's class colours
    # label-only folders: the encoding of the maps (a dataset with one: embedded, ade20k, ...); None = the models'
    # own (cards, plug-ins' `encoding`), which must agree. A run folder's config.json records the resolved one.
    encoding: DatasetKind | None = None


@dataclass(frozen=True)
class ModelSpec:
    """One row family of the table."""

    name: str  # the `model` column
    source: str = ""  # load_pipeline source (checkpoint dir or bundled name), a plug-in entry point; empty for references
    kind: ModelKind = ModelKind.DIFFUSION
    mode: Mode = Mode.AUTO  # SCDM or SDM generation for a diffusion checkpoint


@dataclass(frozen=True)
class CorruptionSpec:
    """One noise_sim kind swept over severities in (0, 1]."""

    kind: str  # a noise_sim.KINDS name: "ds", "edge", "random", or a human-error kind
    severities: tuple[float, ...] = (0.5,)  # noise_sim severities; resolve_params gives natural values


def default_models() -> tuple[ModelSpec, ...]:
    """The bundled SCDM vs SDM pair plus the two reference rows."""
    return (ModelSpec("embedded-scdm", "embedded-scdm"), ModelSpec("embedded-sdm", "embedded-sdm"),
            ModelSpec("real", kind=ModelKind.REAL), ModelSpec("flat-paint", kind=ModelKind.FLAT_PAINT))


def paper_corruptions() -> tuple[CorruptionSpec, ...]:
    """The paper's DS / Edge / Random: first severity = the paper's setting, second = a harder one."""
    return (CorruptionSpec("ds", (0.4, 0.6)),  # factor 4 (paper), 8
            CorruptionSpec("edge", (0.3, 0.6)),  # radius 2 (paper), 4
            CorruptionSpec("random", (0.2, 0.6)))  # p 0.1 (paper), 0.3


@dataclass(frozen=True)
class BenchConfig:
    """A whole benchmark run; `BenchConfig()` is the default CPU run on the embedded world."""

    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    models: tuple[ModelSpec, ...] = field(default_factory=default_models)
    corruptions: tuple[CorruptionSpec, ...] = field(default_factory=paper_corruptions)
    clean: bool = True  # score clean labels too (corruption "clean", severity 0)
    seeds: tuple[int, ...] = (0,)  # each seed re-draws corruptions and sampling noise; error bars over seeds
    # sampler settings, each a column family of the table; a field left None is the card's default (docs/method.md §5)
    samplers: tuple[SamplingSettings, ...] = (SamplingSettings(Sampler.ANCESTRAL, 25),)  # the reference 25-step mode
    limit: int | None = None  # use only the first N labels
    samples: int = 1  # samples per label scored by FID/KID/mIoU
    diversity_samples: int = 3  # samples per label for the diversity metrics (>= 2)
    diversity_labels: int = 8  # first labels that get the extra diversity samples; 0 disables diversity
    diversity_corrupted: bool = False  # also draw diversity samples on corrupted labels (not only clean ones)
    metrics: tuple[Metric, ...] | None = None  # None = every metric whose weights are on this machine
    segmenter: str | None = None  # load_segmenter source; None = the dataset's default, if it has one
    inception_weights: str | None = None  # torch-fidelity Inception .pth; None = its cache, if present
    lpips_backbone: str | None = None  # torchvision AlexNet .pth; None = torch hub's cache, if present
    batch_size: int = 16  # images per generate() call (results do not depend on it)
    metric_batch_size: int = 64  # images per feature-extractor / segmenter call
    # precision of the samplers that give none; None = the card's (embedded: auto, official: auto-fp16)
    precision: Precision | None = None
    device: str | None = None  # None = cuda when present, else cpu
    grid_labels: int = 4  # labels shown per image grid
    figures: bool = True  # draw plots and grids (`python -m bench plot RUN` redraws plots later)


def requested_settings(config: BenchConfig, model: ModelSpec) -> list[SamplingSettings]:
    """A diffusion model's sampler settings as asked for: the run's `precision` and the model's `mode` fill what a
    `[[samplers]]` entry leaves unset; `scdm.settings.resolve` fills the rest from the model's card."""
    return [dataclasses.replace(s, precision=s.precision or config.precision,
                                label_diffusion=s.label_diffusion if s.label_diffusion is not None
                                else model.mode.label_diffusion)
            for s in config.samplers]


# ---------------------------------------------------------------------------------------------- validation

def validate(config: BenchConfig) -> BenchConfig:
    """Check every field that can be checked without files; raise ValueError saying what to change."""
    import noise_sim

    if not config.models:
        raise ValueError("no models: give at least one --model or a `models` list in the config file")
    names = [m.name for m in config.models]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"model names must be unique, got duplicates {dupes}; "
                         f"give each a distinct `name` in a config file (--config)")
    for m in config.models:
        if not m.name or "/" in m.name or m.name.startswith("."):
            raise ValueError(f"model name {m.name!r} must be non-empty, without '/' and not start with '.'")
        if m.kind == ModelKind.DIFFUSION and not m.source:
            raise ValueError(f"model {m.name!r} needs a `source` (checkpoint dir, 'embedded-scdm' or 'embedded-sdm')")
        if m.kind == ModelKind.PLUGIN and not all(m.source.rpartition(":")[::2]):
            raise ValueError(f"plug-in model {m.name!r} needs `source` = 'package.module:factory' or "
                             f"'path/to/file.py:factory' (--plugin NAME=ENTRY), got {m.source!r}")
    if not config.clean and not config.corruptions:
        raise ValueError("nothing to score: enable clean labels or give at least one corruption")
    for c in config.corruptions:
        if c.kind not in noise_sim.KINDS:
            raise ValueError(f"unknown corruption {c.kind!r}; choose from {list(noise_sim.KINDS)}")
        if not c.severities:
            raise ValueError(f"corruption {c.kind!r} has no severities")
        for s in c.severities:
            if isinstance(s, bool) or not isinstance(s, (int, float)) or math.isnan(s) or not 0 < s <= 1:
                raise ValueError(f"corruption {c.kind!r}: severities must be in (0, 1] (0 is the clean row), got {s!r}")
    if not config.seeds or len(set(config.seeds)) != len(config.seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {list(config.seeds)}")
    if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in config.seeds):
        raise ValueError(f"seeds must be non-negative integers, got {list(config.seeds)}")
    if not config.samplers:
        raise ValueError("give at least one sampler setting (an empty [[samplers]] table is the card's sampler)")
    for i, s in enumerate(config.samplers):  # card-independent checks; run() resolves each model's settings
        at = f"samplers[{i}]"
        if not isinstance(s, SamplingSettings):
            raise ValueError(f"{at} must be a scdm.settings.SamplingSettings, got {type(s).__name__}")
        if s.steps is not None and s.steps < 1:
            raise ValueError(f"{at}.steps must be >= 1, got {s.steps}")
        if s.guidance is not None and (not math.isfinite(s.guidance) or s.guidance < 0):
            raise ValueError(f"{at}.guidance must be a finite number >= 0, got {s.guidance}")
        if s.eta is not None and not (math.isfinite(s.eta) and 0 <= s.eta <= 1):
            raise ValueError(f"{at}.eta must be in [0, 1], got {s.eta}")
        if s.eta is not None and s.sampler not in (None, Sampler.DDIM):
            raise ValueError(f"{at}: eta only applies to the ddim sampler, got eta={s.eta:g} with {s.sampler.value}")
        for m in config.models:
            if s.label_diffusion is not None and m.mode.label_diffusion not in (None, s.label_diffusion):
                raise ValueError(f"model {m.name!r} has mode {m.mode.value!r} but {at}.label_diffusion is "
                                 f"{str(s.label_diffusion).lower()}; drop one of them")
    ints = {"samples": (config.samples, 1), "diversity_samples": (config.diversity_samples, 2),
            "diversity_labels": (config.diversity_labels, 0), "batch_size": (config.batch_size, 1),
            "metric_batch_size": (config.metric_batch_size, 1), "grid_labels": (config.grid_labels, 0),
            "dataset.resolution": (config.dataset.resolution, 16), "dataset.world_scenes": (config.dataset.world_scenes, 2),
            "dataset.flat_paint_images": (config.dataset.flat_paint_images, 1)}
    if config.limit is not None:
        ints["limit"] = (config.limit, 2)
    if config.dataset.reference_images is not None:
        ints["dataset.reference_images"] = (config.dataset.reference_images, 2)
    for name, (value, low) in ints.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if config.dataset.kind != DatasetKind.EMBEDDED and not config.dataset.root:
        raise ValueError(f"dataset {config.dataset.kind.value!r} needs `root` (--root DIR): the dataset folder")
    encoding = config.dataset.encoding
    if encoding is not None and config.dataset.kind != DatasetKind.LABELS:
        raise ValueError(f"dataset.encoding (--encoding) is for label-only folders (--dataset labels); "
                         f"dataset {config.dataset.kind.value!r} has its own encoding")
    if encoding in (DatasetKind.FOLDER, DatasetKind.LABELS):
        raise ValueError(f"dataset.encoding must name a dataset with a label encoding "
                         f"({', '.join(k.value for k in DatasetKind if k.has_photos and k != DatasetKind.FOLDER)}), "
                         f"got {encoding.value!r}")
    if not config.dataset.kind.has_photos and not any(m.kind.generative for m in config.models):
        raise ValueError("a label-only folder has no photos for the real and flat-paint rows: give at least one "
                         "--model or --plugin")
    return config


# ---------------------------------------------------------------------------------------------- (de)serialisation

# "format" of a saved config (a run folder's config.json, `config_to_json`); a hand-written file may leave it out
# (format 1). Fields are read and type-checked by scdm.serialize, errors name the field: `samplers[0].steps: ...`.
CONFIG_FORMAT = 1


def config_document(config: BenchConfig) -> dict[str, Any]:
    """The saved JSON object: the format version, then BenchConfig's fields."""
    return {"format": CONFIG_FORMAT, **to_json_value(config)}


def config_from_document(data: Any) -> BenchConfig:
    """A BenchConfig from a parsed JSON/TOML document (every field optional)."""
    _, fields = split_format(data, current=CONFIG_FORMAT, where="")
    return from_json_value(BenchConfig, fields, where="")


def load_config(path: str | Path) -> BenchConfig:
    """A BenchConfig from a .json or .toml file with BenchConfig's fields (all optional)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"config file {path} is not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {e}") from None
    try:
        return config_from_document(data)
    except ValueError as e:
        raise ValueError(f"config file {path}: {e}") from None


def config_to_json(config: BenchConfig) -> str:
    return json.dumps(config_document(config), indent=1)
