"""Preview grid: one clean label map and every kind at a few severities, colour-coded, with captions."""

from __future__ import annotations

import colorsys
from typing import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from .registry import KINDS, corrupt, get_kind

Palette = Mapping[int, tuple[int, int, int]]


def id_color(i: int, unlabeled: int = 0) -> tuple[int, int, int]:
    """A fixed colour per id (golden-ratio hues); ``unlabeled`` is black."""
    if i == unlabeled:
        return (0, 0, 0)
    hue = (i * 0.61803398875) % 1.0
    sat, val = (0.55, 0.95) if i % 2 else (0.8, 0.75)
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (round(255 * r), round(255 * g), round(255 * b))


def colorize(ids: Tensor, palette: Palette | None = None, unlabeled: int = 0) -> np.ndarray:
    """(H, W) ids -> (H, W, 3) uint8 RGB, from ``palette`` where it has the id, else ``id_color``."""
    ids_np = ids.cpu().numpy()
    values, inverse = np.unique(ids_np, return_inverse=True)
    lut = np.array([(palette or {}).get(int(v), id_color(int(v), unlabeled)) for v in values], np.uint8)
    return lut[inverse.reshape(ids_np.shape)]


def preview_grid(
    labels: Tensor,
    *,
    kinds: Sequence[str] = KINDS,
    severities: Sequence[float] = (0.25, 0.5, 1.0),
    generator: torch.Generator | None = None,
    instances: Tensor | None = None,
    unlabeled: int = 0,
    dataset: str | None = None,
    palette: Palette | None = None,
) -> Image.Image:
    """Rows = kinds; columns = clean, then each severity (one seed from ``generator`` for every cell).

    ``dataset`` goes to the kinds that take one (confusion table, colour palette); None: their defaults.
    """
    if labels.dim() != 2:
        raise ValueError(f"preview takes one (H, W) label map, got shape {tuple(labels.shape)}")
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    h, w = labels.shape
    pad, head, side = 4, 18, 84
    grid = Image.new("RGB", (side + (len(severities) + 1) * (w + pad), head + len(kinds) * (h + pad)), "white")
    draw = ImageDraw.Draw(grid)
    for c, title in enumerate(["clean"] + [f"severity {s:g}" for s in severities]):
        draw.text((side + c * (w + pad) + 2, 3), title, fill="black")
    clean = Image.fromarray(colorize(labels, palette, unlabeled))
    for r, kind in enumerate(kinds):
        y = head + r * (h + pad)
        draw.text((4, y + h // 2 - 6), kind, fill="black")
        grid.paste(clean, (side, y))
        extra = {"dataset": dataset} if dataset is not None and "dataset" in get_kind(kind).options else {}
        for c, s in enumerate(severities, start=1):
            noisy = corrupt(labels, kind, severity=s, generator=torch.Generator().manual_seed(seed),
                            instances=instances, unlabeled=unlabeled, **extra)
            grid.paste(Image.fromarray(colorize(noisy, palette, unlabeled)), (side + c * (w + pad), y))
    return grid
