"""The run folder: where each cell's labels, samples and metric rows live; every file is written atomically.

    RUN/config.json                                     the resolved BenchConfig
    RUN/labels/clean/00007.png                          clean label (raw ids)
    RUN/labels/<kind>/<severity>/s<seed>/00007.png      corrupted label
    RUN/samples/<model>/<setting>/cell.json             the identity of every image below it (written first)
    RUN/samples/<model>/<setting>/<corruption>/<severity>/s<seed>/00007_1.png   sample 1 of label 7
    RUN/rows/<cell key>.json                            finished metric rows of one cell (resume)
    RUN/metrics.csv, metrics.parquet, summary.md, plots/, grids/

<setting> is readable plus a digest of the fully resolved `SamplingSettings` (`ancestral_25steps_g1.5_fp16-1f0c9a2e`),
so two settings never share a folder; `cell.json` adds the weights (`Pipeline.digest`), so a folder whose
model changed under the same name is refused instead of mixed (`identity_changes`).
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from scdm.checkpoint import atomic_write_bytes
from scdm.label_io import index_png, read_index_png
from scdm.settings import SamplingSettings, identity

CLEAN = "clean"  # the `corruption` value of clean labels
REFERENCE_SETTING = "none"  # the `sampler` value (and setting folder) of the real and flat-paint rows
IDENTITY_NAME = "cell.json"
IDENTITY_FORMAT = 1  # version of cell.json


def setting_folder(settings: SamplingSettings | None) -> str:
    """Folder of a resolved setting: sampler, steps, guidance, eta, precision, then 8 hex of the whole identity."""
    if settings is None:
        return REFERENCE_SETTING
    ident = identity(settings)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    eta = f"_eta{settings.eta:g}" if settings.eta else ""
    return f"{ident['sampler']}_{settings.steps}steps_g{settings.guidance:g}{eta}_{ident['precision']}-{digest}"


@dataclass(frozen=True)
class Condition:
    """Which label maps: clean, or one corruption at one severity with one seed."""

    corruption: str = CLEAN
    severity: float = 0.0
    seed: int = 0

    @property
    def is_clean(self) -> bool:
        return self.corruption == CLEAN

    @property
    def folder(self) -> Path:
        return Path(self.corruption, f"{self.severity:g}", f"s{self.seed}")


@dataclass(frozen=True)
class Cell:
    """One table cell family: a model with a resolved setting under a condition."""

    model: str
    settings: SamplingSettings | None  # fully resolved (scdm.settings.resolve); None for the real and flat-paint rows
    condition: Condition

    @property
    def setting(self) -> str:
        return setting_folder(self.settings)


def label_path(run: Path, condition: Condition, index: int) -> Path:
    if condition.is_clean:
        return run / "labels" / CLEAN / f"{index:05d}.png"
    return run / "labels" / condition.folder / f"{index:05d}.png"


def setting_dir(run: Path, model: str, setting: str) -> Path:
    """Where the images of one model under one setting folder live (with their cell.json)."""
    return run / "samples" / model / setting


def sample_path(run: Path, cell: Cell, index: int, j: int) -> Path:
    return setting_dir(run, cell.model, cell.setting) / cell.condition.folder / f"{index:05d}_{j}.png"


def rows_path(run: Path, cell: Cell, ident: dict, context: str) -> Path:
    """Metric rows of a cell, keyed by its identity, its condition and everything the metrics depend on."""
    key = json.dumps([ident, str(cell.condition.folder), context], sort_keys=True)
    return run / "rows" / f"{cell.model}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"


# ---------------------------------------------------------------------------------------------- cell identities

def cell_identity(model: str, kind: str, settings: SamplingSettings | None = None, weights: str | None = None) -> dict:
    """What made a setting folder's images: the resolved settings and the weights' digest (None for references,
    whose inputs, the dataset's images and labels, are checked for the whole run folder)."""
    return {"format": IDENTITY_FORMAT, "model": model, "kind": kind, "weights": weights,
            "settings": None if settings is None else identity(settings)}


def identity_changes(old: dict, new: dict) -> list[str]:
    """`field: old -> new` for every difference between two cell identities."""
    flat = lambda d: {**{k: v for k, v in d.items() if k != "settings"}, **(d.get("settings") or {})}  # noqa: E731
    a, b = flat(old), flat(new)
    return [f"{k}: {a.get(k)} -> {b.get(k)}" for k in dict.fromkeys([*b, *a]) if a.get(k) != b.get(k)]


def unidentified_folder(run: Path) -> Path | None:
    """A setting folder with images but no cell.json (written by a bench that did not record identities)."""
    for folder in sorted(run.glob("samples/*/*")):
        if folder.is_dir() and not (folder / IDENTITY_NAME).is_file() and next(folder.rglob("*.png"), None):
            return folder
    return None


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 RGB (H, W, 3), or integer ids (H, W) as an index PNG (`scdm.label_io.index_png`: 8 bit, else 16)."""
    if array.ndim == 2:
        return index_png(array)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, array: np.ndarray) -> None:
    atomic_write_bytes(path, png_bytes(array))


def read_png(path: Path) -> np.ndarray:
    """An image (samples, photos) as its array."""
    with Image.open(path) as im:
        return np.asarray(im)


def read_label_png(path: Path) -> np.ndarray:
    """(H, W) int64 raw ids of a label written by `write_png`."""
    return read_index_png(path).ids


def read_images(paths: list[Path]) -> np.ndarray:
    """(N, H, W, 3) uint8 from PNG files."""
    return np.stack([read_png(p) for p in paths])


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
