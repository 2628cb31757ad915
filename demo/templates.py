"""Example label maps for checkpoints of the real datasets: simple procedural faces and street scenes.

`examples_for(dataset, table, size)` picks what the Examples tab offers: the embedded world's scenes when the
model speaks ADE20K raw ids (the world is drawn in them), CelebAMask-HQ faces, Cityscapes streets, or nothing.
Every template is a pure function of the size (no randomness), drawn back to front in unit coordinates with the
dataset's raw ids from `scdm.datasets`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from scdm.datasets import ADE20K_CLASSES
from scdm.world import CLASS_IDS

from .classes import ClassTable
from .editing import NUM_EXAMPLES, example_scene, examples_supported

# CelebAMask-HQ raw ids (scdm.datasets._CELEBAMASK_HQ)
BACKGROUND, SKIN, NOSE, EYE_G, L_EYE, R_EYE, L_BROW, R_BROW, L_EAR, R_EAR = range(10)
MOUTH, U_LIP, L_LIP, HAIR, HAT, EAR_R, NECK_L, NECK, CLOTH = range(10, 19)
# Cityscapes labelIds (scdm.datasets._CITYSCAPES)
ROAD, SIDEWALK, BUILDING, FENCE, POLE, LIGHT, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = \
    7, 8, 11, 13, 17, 19, 20, 21, 22, 23, 24, 26


@dataclass(frozen=True)
class Examples:
    """What the Examples tab offers for one model: labels with captions, or a message saying why there are none."""

    labels: tuple[np.ndarray, ...]  # (S, S) int64 raw ids each
    captions: tuple[str, ...]
    title: str  # the gallery's label, or the tab's message when there are no examples
    world: bool = False  # the embedded world's scenes (they also have images, for edit mode)


class _Canvas:
    """A (size, size) id map drawn back to front in unit coordinates (x right, y down, both 0..1)."""

    def __init__(self, size: int, fill: int):
        self.label = np.full((size, size), fill, np.int64)
        c = (np.arange(size) + 0.5) / size
        self.y, self.x = np.meshgrid(c, c, indexing="ij")  # (S, S) each

    def paint(self, mask: np.ndarray, raw_id: int) -> None:
        self.label[mask] = raw_id

    def ellipse(self, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
        return ((self.x - cx) / rx) ** 2 + ((self.y - cy) / ry) ** 2 <= 1

    def rect(self, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
        return (self.x >= x0) & (self.x < x1) & (self.y >= y0) & (self.y < y1)


# ------------------------------------------------------------------------------------------------- faces

def face(size: int, *, long_hair: bool = False, glasses: bool = False, hat: bool = False,
         open_mouth: bool = False) -> np.ndarray:
    """A frontal CelebAMask-HQ face: background, cloth, neck, hair, skin, ears, brows, eyes, nose, lips."""
    c = _Canvas(size, BACKGROUND)
    cx, cy, rx, ry = 0.5, 0.45, 0.21, 0.28  # the face ellipse
    c.paint(c.ellipse(0.5, 1.12, 0.48, 0.3), CLOTH)
    c.paint(c.rect(0.41, 0.6, 0.59, 0.9) & ~c.ellipse(0.5, 1.12, 0.48, 0.3), NECK)
    if long_hair:
        c.paint(c.ellipse(cx, 0.55, 0.29, 0.42) & (c.y < 0.92), HAIR)
    c.paint(c.ellipse(cx - rx, cy + 0.02, 0.035, 0.07), L_EAR)
    c.paint(c.ellipse(cx + rx, cy + 0.02, 0.035, 0.07), R_EAR)
    c.paint(c.ellipse(cx, cy, rx, ry), SKIN)
    c.paint(c.ellipse(cx, cy - 0.06, rx + 0.03, ry + 0.02) & (c.y < cy - 0.16 + 0.5 * (c.x - cx) ** 2), HAIR)
    for side, brow, eye in ((-1, L_BROW, L_EYE), (1, R_BROW, R_EYE)):
        ex = cx + side * 0.085
        c.paint(c.ellipse(ex, cy - 0.08, 0.05, 0.014), brow)
        if glasses:
            c.paint(c.ellipse(ex, cy - 0.025, 0.06, 0.045) & ~c.ellipse(ex, cy - 0.025, 0.045, 0.032), EYE_G)
        c.paint(c.ellipse(ex, cy - 0.025, 0.035, 0.016), eye)
    if glasses:
        c.paint(c.rect(cx - 0.026, cy - 0.035, cx + 0.026, cy - 0.022), EYE_G)
    c.paint(c.ellipse(cx, cy + 0.06, 0.028, 0.06) & (c.y > cy), NOSE)
    if open_mouth:
        c.paint(c.ellipse(cx, cy + 0.165, 0.065, 0.035), MOUTH)
    c.paint(c.ellipse(cx, cy + 0.15, 0.065, 0.018) & ~c.ellipse(cx, cy + 0.165, 0.065, 0.035), U_LIP)
    c.paint(c.ellipse(cx, cy + 0.19, 0.06, 0.02) & ~c.ellipse(cx, cy + 0.165, 0.065, 0.035), L_LIP)
    if hat:
        c.paint(c.ellipse(cx, cy - 0.2, rx + 0.04, 0.14) & (c.y < cy - 0.17), HAT)
        c.paint(c.rect(cx - rx - 0.1, cy - 0.2, cx + rx + 0.1, cy - 0.16), HAT)
    return c.label


FACES: dict[str, Callable[[int], np.ndarray]] = {
    "short hair": lambda s: face(s),
    "long hair, smiling": lambda s: face(s, long_hair=True, open_mouth=True),
    "glasses": lambda s: face(s, glasses=True),
    "hat, long hair": lambda s: face(s, long_hair=True, hat=True),
}


# ------------------------------------------------------------------------------------------------- streets

def street(size: int, *, trees: bool = False, cars: int = 0, person: bool = False) -> np.ndarray:
    """A Cityscapes street in one-point perspective: sky, buildings (or trees), sidewalks, road, poles, cars."""
    c = _Canvas(size, SKY)
    horizon, vx = 0.45, 0.5
    below = c.y >= horizon
    depth = np.clip((c.y - horizon) / (1 - horizon), 0, 1)  # 0 at the horizon, 1 at the bottom edge
    half_road = 0.02 + 0.55 * depth
    half_walk = half_road + 0.03 + 0.25 * depth
    facade = 0.08 + 0.32 * np.clip((horizon - c.y) / horizon, 0, 1)  # the buildings' inner edge widens upwards
    side = np.abs(c.x - vx) > facade
    c.paint(side & (c.y < horizon + 0.02) & (c.y > 0.05 + 0.1 * (np.abs(c.x - vx) < 0.3)), BUILDING)
    if trees:
        for x in (0.12, 0.3, 0.7, 0.88):
            c.paint(c.ellipse(x, 0.3, 0.13, 0.17), VEGETATION)
        c.paint(below & (np.abs(c.x - vx) <= half_walk + 0.1), TERRAIN)
    c.paint(below & (np.abs(c.x - vx) > half_road), SIDEWALK if not trees else TERRAIN)
    c.paint(below & (np.abs(c.x - vx) <= half_walk) & (np.abs(c.x - vx) > half_road), SIDEWALK)
    c.paint(below & (np.abs(c.x - vx) <= half_road), ROAD)
    for x in (0.2, 0.8):
        c.paint(c.rect(x - 0.008, 0.2, x + 0.008, 0.75), POLE)
    c.paint(c.rect(0.175, 0.2, 0.225, 0.27), SIGN)
    c.paint(c.rect(0.785, 0.17, 0.815, 0.25), LIGHT)
    if not trees:
        c.paint(c.rect(0.9, 0.7, 1.0, 0.72), FENCE)
    for k in range(cars):
        x, y, w = (0.38, 0.6, 0.14) if k == 0 else (0.62, 0.72, 0.22)
        c.paint(c.rect(x - w / 2, y - 0.45 * w, x + w / 2, y), CAR)
        c.paint(c.ellipse(x, y - 0.45 * w, 0.3 * w, 0.25 * w) & (c.y < y - 0.45 * w), CAR)
    if person:
        c.paint(c.ellipse(0.86, 0.6, 0.018, 0.022), PERSON)
        c.paint(c.rect(0.845, 0.62, 0.875, 0.76), PERSON)
    return c.label


STREETS: dict[str, Callable[[int], np.ndarray]] = {
    "empty street": lambda s: street(s),
    "street with cars": lambda s: street(s, cars=2, person=True),
    "avenue with trees": lambda s: street(s, trees=True, cars=1),
}


# ------------------------------------------------------------------------------------------------- choice

def _speaks_ade20k(table: ClassTable, dataset: str) -> bool:
    """True when the world's ids mean ADE20K's classes here (names match, or the card says ADE20K / embedded)."""
    if dataset in ("ade20k", "embedded"):
        return True
    return all(table.name_of(r) == ADE20K_CLASSES[r - 1].name for r in CLASS_IDS)


def examples_for(dataset: str, table: ClassTable, size: int) -> Examples:
    """The example label maps for a model trained on `dataset` (its card's `dataset`) with classes `table`."""
    templates = {"celebamask_hq": ("CelebAMask-HQ face templates", FACES),
                 "cityscapes": ("Cityscapes street templates", STREETS)}.get(dataset)
    if templates is not None:
        title, makers = templates
        labels = [make(size) for make in makers.values()]
        if all(not table.invalid_ids(label) for label in labels):
            return Examples(tuple(labels), tuple(makers), f"{title}: click one to load it")
    elif examples_supported(table, size) and _speaks_ade20k(table, dataset):
        labels = tuple(example_scene(i, size).label.astype(np.int64) for i in range(NUM_EXAMPLES))
        return Examples(labels, tuple(f"example {i}" for i in range(NUM_EXAMPLES)),
                        "Embedded-world test scenes (ADE20K ids): click one to load it", world=True)
    name = dataset or "this model's dataset"
    return Examples((), (), f"There are no example label maps for {name}: paint one or upload a label map.")
