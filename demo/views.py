"""Pictures for the UI: upscaled images and labels, y_t with its [MASK] pixels, sample strips and edit masks."""
from __future__ import annotations

import numpy as np
import torch

from .classes import ClassTable

DISPLAY_SIDE = 256  # 64 px images are shown at 4x (nearest) so that they are visible
MASK_COLORS = ((150, 150, 150), (110, 110, 110))  # checkerboard for all-zero (masked) label pixels
GAP = 4  # px between images in a strip


def upscale(image: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """(H, W[, 3]) -> nearest-neighbour upscaled by the whole factor that reaches about `side` px."""
    f = max(1, round(side / image.shape[0]))
    return np.asarray(image).repeat(f, 0).repeat(f, 1)


def label_view(label: np.ndarray, table: ClassTable, side: int = DISPLAY_SIDE) -> np.ndarray:
    """(H, W) raw ids -> upscaled colour-coded (h, w, 3) uint8."""
    return upscale(table.colorize(label), side)


def checker(h: int, w: int, cell: int = 4) -> np.ndarray:
    """(h, w, 3) grey checkerboard: how masked pixels are drawn."""
    yy, xx = np.mgrid[:h, :w]
    pick = ((yy // cell + xx // cell) % 2).astype(np.int64)
    return np.asarray(MASK_COLORS, np.uint8)[pick]


def onehot_view(y: torch.Tensor | np.ndarray, table: ClassTable, class_ids: tuple[int, ...]) -> np.ndarray:
    """(C, H, W) one-hot label (all-zero = [MASK]) -> (H, W, 3) colours, masked pixels as a checkerboard.

    `class_ids[c]` is the raw id of channel c; channels past len(class_ids) (the edge channel) are ignored.
    """
    y = torch.as_tensor(y).detach().float().cpu()[: len(class_ids)]
    masked = (y.sum(0) == 0).numpy()
    ids = np.asarray(class_ids, np.int64)[y.argmax(0).numpy()]
    rgb = table.colorize(ids)
    return np.where(masked[..., None], checker(*masked.shape), rgb).astype(np.uint8)


def strip(images: list[np.ndarray] | np.ndarray, gap: int = GAP) -> np.ndarray:
    """Images of one size side by side with white gaps: (H, n*W + (n-1)*gap, 3)."""
    images = [np.asarray(i) for i in images]
    if not images:
        raise ValueError("strip needs at least one image")
    h = images[0].shape[0]
    sep = np.full((h, gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, im in enumerate(images):
        parts += [sep, im] if i else [im]
    return np.concatenate(parts, 1)


def x0_preview(x0: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) x̂_0 in [-1, 1] -> (N, H, W, 3) uint8."""
    return ((x0.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def mask_view(image: np.ndarray, mask: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """The scene image with the region to regenerate tinted magenta."""
    tint = np.asarray((255, 0, 255), np.float32)
    out = np.where(mask[..., None] > 0, 0.45 * image + 0.55 * tint, image).astype(np.uint8)
    return upscale(out, side)
