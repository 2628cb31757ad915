"""Per-dataset confusion tables: groups of raw class ids a careless annotator mixes up.

ADE20K raw ids (objectInfo150, 1-based, 0 = unlabeled): 1 wall, 2 building, 3 sky, 4 floor, 5 tree, ...
The "embedded" table covers the project's synthetic world, which uses ADE20K raw ids for its 12 classes:
building 2, sky 3, tree 5, road 7, grass 10, sidewalk 12, mountain 17, water 22, field 30, rock 35,
sand 47, flower 67 (unlabeled 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ConfusionTable:
    """Groups of mutually confusable class ids; a class may sit in several groups."""

    name: str
    groups: tuple[tuple[int, ...], ...]

    def partners(self) -> dict[int, tuple[int, ...]]:
        """Every listed id -> the sorted ids it can be confused with."""
        out: dict[int, set[int]] = {}
        for group in self.groups:
            for c in group:
                out.setdefault(c, set()).update(x for x in group if x != c)
        return {c: tuple(sorted(p)) for c, p in sorted(out.items())}

    def dense(self, size: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Partner ids padded with -1, (size, P) int64, and partner counts (size,) for ids < size."""
        partners = {c: p for c, p in self.partners().items() if c < size}
        width = max((len(p) for p in partners.values()), default=1)
        table = torch.full((size, width), -1, dtype=torch.int64)
        count = torch.zeros(size, dtype=torch.int64)
        for c, p in partners.items():
            table[c, : len(p)] = torch.tensor(p)
            count[c] = len(p)
        return table.to(device), count.to(device)


ADE20K = ConfusionTable(
    name="ade20k",
    groups=(
        (10, 30),  # grass / field
        (7, 12, 53),  # road / sidewalk / path
        (2, 26, 49),  # building / house / skyscraper
        (26, 80),  # house / hovel
        (27, 22, 61, 129),  # sea / water / river / lake
        (22, 110),  # water / swimming pool
        (5, 18, 73),  # tree / plant / palm
        (18, 67),  # plant / flower
        (17, 69),  # mountain / hill
        (17, 35),  # mountain / rock
        (14, 47, 92, 95),  # earth / sand / dirt track / land
        (4, 29),  # floor / rug
        (20, 31, 32, 76),  # chair / armchair / seat / swivel chair
        (24, 31),  # sofa / armchair
        (16, 34, 65),  # table / desk / coffee table
        (11, 36, 45),  # cabinet / wardrobe / chest of drawers
        (25, 63),  # shelf / bookcase
        (21, 103),  # car / van
        (84, 103, 81),  # truck / van / bus
        (77, 104),  # boat / ship
        (54, 60, 122),  # stairs / stairway / step
        (33, 39, 96),  # fence / railing / bannister
        (46, 71),  # counter / countertop
        (23, 101),  # painting / poster
        (44, 124),  # signboard / trade name
        (37, 83, 86),  # lamp / light / chandelier
        (19, 64),  # curtain / blind
        (40, 58),  # cushion / pillow
        (90, 142, 144),  # television / crt screen / monitor
        (72, 119, 125),  # stove / oven / microwave
        (128, 117),  # bicycle / minibike
        (85, 49),  # tower / skyscraper
    ),
)

EMBEDDED = ConfusionTable(
    name="embedded",
    groups=(
        (10, 30),  # grass / field
        (10, 67),  # grass / flower
        (7, 12),  # road / sidewalk
        (17, 35),  # mountain / rock
        (47, 30),  # sand / field (bare ground)
    ),
)

TABLES: dict[str, ConfusionTable] = {t.name: t for t in (ADE20K, EMBEDDED)}
