"""Preview grid: one clean label map and every kind at a few severities, colour-coded, with captions."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from scdm.labels import ClassTable, id_table

from .registry import KINDS, corrupt, get_kind


def preview_grid(
    labels: Tensor,
    *,
    kinds: Sequence[str] = KINDS,
    severities: Sequence[float] = (0.25, 0.5, 1.0),
    generator: torch.Generator | None = None,
    instances: Tensor | None = None,
    unlabeled: int = 0,
    dataset: str | None = None,
    table: ClassTable | None = None,
) -> Image.Image:
    """Rows = kinds; columns = clean, then each severity (one seed from ``generator`` for every cell).

    ``dataset`` goes to the kinds that take one (confusion table, colour palette); None: their defaults. Colours:
    ``table``, else the dataset's palette with ``unlabeled`` black (``colour.palette_table``), else VOC colours.
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
    rows = []
    for kind in kinds:
        extra = {"dataset": dataset} if dataset is not None and "dataset" in get_kind(kind).options else {}
        rows.append([corrupt(labels, kind, severity=s, generator=torch.Generator().manual_seed(seed),
                             instances=instances, unlabeled=unlabeled, **extra).cpu().numpy() for s in severities])
    if table is None and dataset is not None:
        from .colour import palette_table

        table = palette_table(dataset, unlabeled)
    clean = labels.cpu().numpy()
    if table is None:
        table = id_table(np.unique(np.concatenate([clean.ravel()] + [m.ravel() for row in rows for m in row])),
                         unlabeled)
    for r, (kind, noisy) in enumerate(zip(kinds, rows)):
        y = head + r * (h + pad)
        draw.text((4, y + h // 2 - 6), kind, fill="black")
        grid.paste(Image.fromarray(table.colorize(clean)), (side, y))
        for c, m in enumerate(noisy, start=1):
            grid.paste(Image.fromarray(table.colorize(m)), (side + c * (w + pad), y))
    return grid
