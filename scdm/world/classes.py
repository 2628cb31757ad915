"""The twelve outdoor classes of the world: ADE20K raw ids, with names and colours from the ADE20K table."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..datasets import ADE20K_CLASSES, EMBEDDED_IDS, embedded_labels
from ..labels import ClassTable

UNLABELED = 0  # ADE20K raw id 0: "other/unlabeled"; never produced by the clean world

# Raw ADE20K ids (1-based, as in the devkit annotations; mmseg's 0-based index is raw_id - 1).
BUILDING = 2
SKY = 3
TREE = 5
ROAD = 7
GRASS = 10
SIDEWALK = 12
MOUNTAIN = 17
WATER = 22
FIELD = 30
ROCK = 35
SAND = 47
FLOWER = 67


@dataclass(frozen=True)
class WorldClass:
    """One semantic class: raw ADE20K id, ADE20K name and palette colour."""

    id: int
    name: str
    color: tuple[int, int, int]


def _ade20k(raw_id: int) -> WorldClass:
    """The ADE20K table's entry for `raw_id`: its name and palette colour (`scdm.datasets`)."""
    c = ADE20K_CLASSES[raw_id - 1]
    return WorldClass(c.id, c.name, c.color)


# Channel order of the embedded models; names and colours are ADE20K's (tests pin them: the bundled models use them).
CLASSES: tuple[WorldClass, ...] = tuple(_ade20k(i) for i in EMBEDDED_IDS)
assert EMBEDDED_IDS == (BUILDING, SKY, TREE, ROAD, GRASS, SIDEWALK, MOUNTAIN, WATER, FIELD, ROCK, SAND, FLOWER)
CLASS_IDS: tuple[int, ...] = tuple(c.id for c in CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
PALETTE: dict[int, tuple[int, int, int]] = {UNLABELED: (0, 0, 0), **{c.id: c.color for c in CLASSES}}

THING_IDS: tuple[int, ...] = (BUILDING, TREE, ROCK)  # countable classes that carry instance ids


@functools.lru_cache(maxsize=1)
def _table() -> ClassTable:
    return ClassTable.from_spec(embedded_labels())  # PALETTE's colours, unlabeled black


def label_to_color(label: np.ndarray) -> np.ndarray:
    """Colour-code a (H, W) raw-id label map with PALETTE; other ids get `scdm.labels.UNKNOWN_COLOR`."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be a (H, W) array of raw ids, got shape {label.shape}")
    return _table().colorize(label)
