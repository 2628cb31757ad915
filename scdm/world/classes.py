"""The twelve outdoor classes of the world, with ADE20K raw ids and the official ADE20K palette."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


# Colours are ADE20K palette entries (mmsegmentation ADE20KDataset palette[raw_id - 1]).
CLASSES: tuple[WorldClass, ...] = (
    WorldClass(BUILDING, "building", (180, 120, 120)),
    WorldClass(SKY, "sky", (6, 230, 230)),
    WorldClass(TREE, "tree", (4, 200, 3)),
    WorldClass(ROAD, "road", (140, 140, 140)),
    WorldClass(GRASS, "grass", (4, 250, 7)),
    WorldClass(SIDEWALK, "sidewalk", (235, 255, 7)),
    WorldClass(MOUNTAIN, "mountain", (143, 255, 140)),
    WorldClass(WATER, "water", (61, 230, 250)),
    WorldClass(FIELD, "field", (112, 9, 255)),
    WorldClass(ROCK, "rock", (255, 41, 10)),
    WorldClass(SAND, "sand", (160, 150, 20)),
    WorldClass(FLOWER, "flower", (255, 0, 0)),
)
CLASS_IDS: tuple[int, ...] = tuple(c.id for c in CLASSES)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
PALETTE: dict[int, tuple[int, int, int]] = {UNLABELED: (0, 0, 0), **{c.id: c.color for c in CLASSES}}

THING_IDS: tuple[int, ...] = (BUILDING, TREE, ROCK)  # countable classes that carry instance ids

_LUT = np.zeros((256, 3), np.uint8)
for _id, _rgb in PALETTE.items():
    _LUT[_id] = _rgb


def label_to_color(label: np.ndarray) -> np.ndarray:
    """Colour-code a (H, W) raw-id label map with PALETTE; unknown ids become black."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be a (H, W) array of raw ids, got shape {label.shape}")
    if label.dtype != np.uint8:
        label = np.where((label >= 0) & (label < 256), label, 0).astype(np.uint8)
    return _LUT[label]
