"""Edit mode: an embedded-world scene whose label the user repaints; only the repainted pixels are regenerated."""
from __future__ import annotations

import functools

import numpy as np

from scdm.world import CLASS_IDS, Scene, WorldConfig, make_scene

from .classes import ClassTable

NUM_EXAMPLES = 8  # test-split scenes offered as examples and edit targets
GROW = 1  # px the repainted region is grown by, so the new content blends across the old boundary


def examples_supported(table: ClassTable, size: int) -> bool:
    """True when the model knows every class of the embedded world and its size can be rendered."""
    return set(CLASS_IDS) <= set(table.raw_ids) and 16 <= size <= 1024


@functools.lru_cache(maxsize=2 * NUM_EXAMPLES)
def example_scene(index: int, size: int) -> Scene:
    """Test scene `index` of the embedded world at `size` px (cached; the world is deterministic)."""
    if not 0 <= index < NUM_EXAMPLES:
        raise ValueError(f"example index must be in 0..{NUM_EXAMPLES - 1}, got {index}")
    return make_scene(int(index), "test", WorldConfig(size=size))


def repaint_mask(original: np.ndarray, edited: np.ndarray, grow: int = GROW) -> np.ndarray:
    """(H, W) uint8: 1 where `edited` differs from `original`, grown by `grow` px (square neighbourhood)."""
    if original.shape != edited.shape:
        raise ValueError(f"edited label {edited.shape} and original {original.shape} differ in size")
    mask = original != edited
    for _ in range(grow):
        m = mask.copy()
        m[1:] |= mask[:-1]
        m[:-1] |= mask[1:]
        m[:, 1:] |= mask[:, :-1]
        m[:, :-1] |= mask[:, 1:]
        mask = m
    return mask.astype(np.uint8)
