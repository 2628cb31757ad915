"""The run folder: where each cell's labels, samples and metric rows live; every file is written atomically.

    RUN/config.json                                     the resolved BenchConfig
    RUN/labels/clean/00007.png                          clean label (raw ids)
    RUN/labels/<kind>/<severity>/s<seed>/00007.png      corrupted label
    RUN/samples/<model>/<setting>/<corruption>/<severity>/s<seed>/00007_1.png   sample 1 of label 7
    RUN/rows/<cell key>.json                            finished metric rows of one cell (resume)
    RUN/metrics.csv, metrics.parquet, summary.md, plots/, grids/
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

CLEAN = "clean"  # the `corruption` value of clean labels
REFERENCE_SETTING = "none"  # the `sampler` value of the real and flat-paint rows


@dataclass(frozen=True)
class Setting:
    """A resolved sampler setting of one model (guidance filled in from the checkpoint)."""

    sampler: str = REFERENCE_SETTING  # Sampler value, or "none" for reference rows
    steps: int = 0
    guidance: float = 0.0
    eta: float = 0.0  # DDIM stochasticity

    @property
    def folder(self) -> str:
        if self.sampler == REFERENCE_SETTING:
            return REFERENCE_SETTING
        return f"{self.sampler}_{self.steps}steps_g{self.guidance:g}" + (f"_eta{self.eta:g}" if self.eta else "")


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
    """One table cell family: a model with a setting under a condition."""

    model: str
    setting: Setting
    condition: Condition


def label_path(run: Path, condition: Condition, index: int) -> Path:
    if condition.is_clean:
        return run / "labels" / CLEAN / f"{index:05d}.png"
    return run / "labels" / condition.folder / f"{index:05d}.png"


def sample_path(run: Path, cell: Cell, index: int, j: int) -> Path:
    return run / "samples" / cell.model / cell.setting.folder / cell.condition.folder / f"{index:05d}_{j}.png"


def rows_path(run: Path, cell: Cell, context: str) -> Path:
    """Metric rows of a cell, keyed by the cell and a digest of everything the metrics depend on."""
    key = json.dumps([cell.model, cell.setting.folder, str(cell.condition.folder), context])
    return run / "rows" / f"{cell.model}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 RGB (H, W, 3) or integer ids (H, W) -> PNG bytes (8-bit when ids fit, else 16-bit)."""
    if array.ndim == 2 and array.dtype != np.uint8:
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"label ids must be in 0..65535 to be stored as PNG, got {array.min()}..{array.max()}")
        array = array.astype(np.uint8 if array.max() < 256 else np.uint16)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_png(path: Path, array: np.ndarray) -> None:
    atomic_write_bytes(path, png_bytes(array))


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


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
