"""PNG label maps <-> raw id arrays: 8-bit grey (L), palette (P: the index is the id), 16-bit and 32-bit grey."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ID_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I", "1")  # PIL modes whose pixel values are the ids


@dataclass(frozen=True)
class LabelFile:
    """A label map read from disk: raw ids plus what is needed to write it back the same way."""

    ids: np.ndarray  # (H, W) int64 raw dataset ids
    mode: str  # PIL mode of the source file
    palette: tuple[int, ...] | None = None  # the source palette, for mode P


def read_label_png(path: str | Path) -> LabelFile:
    """Read a label map whose pixel values are class ids; ValueError for colour images or bad values."""
    with Image.open(path) as im:
        im.load()
        if im.mode not in ID_MODES:
            raise ValueError(
                f"{path}: PIL mode {im.mode} is not an id map (expected one of {', '.join(ID_MODES)}); "
                "convert colour-coded label maps to class ids first"
            )
        ids = np.asarray(im).astype(np.int64)
        palette = tuple(im.getpalette()) if im.mode == "P" and im.getpalette() else None
        mode = im.mode
    if ids.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel image, got shape {ids.shape}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"{path}: negative ids ({ids.min()}) are not class ids")
    return LabelFile(ids=ids, mode=mode, palette=palette)


def write_label_png(path: str | Path, ids: np.ndarray, like: LabelFile | None = None) -> None:
    """Write ids as PNG, keeping the source's mode (and palette) when the values fit, else 8 or 16 bit."""
    ids = np.asarray(ids)
    high = int(ids.max()) if ids.size else 0
    if ids.size and int(ids.min()) < 0:
        raise ValueError(f"cannot write negative ids to {path}")
    if high > 65535:
        raise ValueError(f"ids up to {high} do not fit a 16-bit PNG ({path})")
    if high <= 255 and like is not None and like.mode == "P" and like.palette is not None:
        im = Image.fromarray(ids.astype(np.uint8))
        im.putpalette(list(like.palette))  # an L image with a palette becomes P, values kept as indices
    elif high <= 255 and (like is None or like.mode in ("L", "P", "1")):
        im = Image.fromarray(ids.astype(np.uint8))  # 8-bit grey
    else:
        im = Image.fromarray(ids.astype(np.uint16))  # 16-bit grey PNG
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
