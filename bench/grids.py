"""Image grids from a run folder: per condition, rows = labels, columns = clean label, corrupted label, a sample per model."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from scdm.labels import ClassTable

from .plots import save_figure
from .store import Cell, Condition, label_path, read_label_png, read_png, sample_path


def make_grid(run: Path, condition: Condition, cells: Sequence[Cell], indices: Sequence[int], table: ClassTable,
              out: Path) -> Path | None:
    """Save grids/<condition>.png, labels coloured by `table`; columns whose files are missing are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns: list[tuple[str, list[np.ndarray]]] = []
    clean = [label_path(run, Condition(seed=condition.seed), i) for i in indices]
    if all(p.exists() for p in clean):
        columns.append(("label", [table.colorize(read_label_png(p)) for p in clean]))
    if not condition.is_clean:
        noisy = [label_path(run, condition, i) for i in indices]
        if all(p.exists() for p in noisy):
            columns.append((f"{condition.corruption} {condition.severity:g}",
                            [table.colorize(read_label_png(p)) for p in noisy]))
    for cell in cells:
        paths = [sample_path(run, cell, i, 0) for i in indices]
        if all(p.exists() for p in paths):
            columns.append((cell.model, [read_png(p) for p in paths]))
    if len(columns) < 2 or not indices:
        return None
    rows, cols = len(indices), len(columns)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.5 * rows + 0.3), squeeze=False)
    for c, (title, images) in enumerate(columns):
        axes[0][c].set_title(title, fontsize=7)
        for r, image in enumerate(images):
            axes[r][c].imshow(image, interpolation="nearest")
            axes[r][c].axis("off")
    fig.tight_layout(pad=0.2)
    path = save_figure(fig, out)
    plt.close(fig)
    return path
