"""Image grids from a run folder: per condition, rows = labels, columns = clean label, corrupted label, a sample per
model; a legend under the grid names the classes the label columns show (the encoding's names, else the ids)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from scdm.labels import ClassTable, hex_color

from .plots import save_figure
from .store import Cell, Condition, label_path, read_label_png, read_png, sample_path

LEGEND_CLASSES = 24  # most frequent classes named under a grid; the rest are left out to keep it readable


def legend_entries(table: ClassTable, labels: Sequence[np.ndarray], limit: int = LEGEND_CLASSES
                   ) -> list[tuple[str, str]]:
    """(name, hex colour) of the raw ids in `labels`, most pixels first; ids outside `table` read 'id <n>'."""
    ids, counts = np.unique(np.concatenate([np.asarray(x).ravel() for x in labels]), return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")][:limit]
    colours = table.colorize(order[None])[0]  # (E, 3)
    return [(table.name_of(int(i)), hex_color(tuple(int(v) for v in c))) for i, c in zip(order, colours)]


def grid_figure(run: Path, condition: Condition, cells: Sequence[Cell], indices: Sequence[int], table: ClassTable):
    """The grid as a matplotlib Figure (None when fewer than two columns have files); legend of the label colours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    columns: list[tuple[str, list[np.ndarray]]] = []
    shown: list[np.ndarray] = []  # raw label maps of the label columns, for the legend
    clean = [label_path(run, Condition(seed=condition.seed), i) for i in indices]
    if all(p.exists() for p in clean):
        maps = [read_label_png(p) for p in clean]
        shown += maps
        columns.append(("label", [table.colorize(x) for x in maps]))
    if not condition.is_clean:
        noisy = [label_path(run, condition, i) for i in indices]
        if all(p.exists() for p in noisy):
            maps = [read_label_png(p) for p in noisy]
            shown += maps
            columns.append((f"{condition.corruption} {condition.severity:g}", [table.colorize(x) for x in maps]))
    for cell in cells:
        paths = [sample_path(run, cell, i, 0) for i in indices]
        if all(p.exists() for p in paths):
            columns.append((cell.model, [read_png(p) for p in paths]))
    if len(columns) < 2 or not indices:
        return None
    rows, cols = len(indices), len(columns)
    entries = legend_entries(table, shown) if shown else []
    legend_rows = -(-len(entries) // max(cols, 1))
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.5 * rows + 0.3 + 0.18 * legend_rows), squeeze=False)
    for c, (title, images) in enumerate(columns):
        axes[0][c].set_title(title, fontsize=7)
        for r, image in enumerate(images):
            axes[r][c].imshow(image, interpolation="nearest")
            axes[r][c].axis("off")
    bottom = 0.18 * legend_rows / (1.5 * rows + 0.3 + 0.18 * legend_rows)
    fig.tight_layout(pad=0.2, rect=(0, bottom, 1, 1))
    if entries:
        fig.legend([Patch(facecolor=c, edgecolor="black", linewidth=0.3) for _, c in entries], [n for n, _ in entries],
                   loc="lower center", ncol=max(cols, 1), fontsize=6, frameon=False, handlelength=1, columnspacing=0.8)
    return fig


def make_grid(run: Path, condition: Condition, cells: Sequence[Cell], indices: Sequence[int], table: ClassTable,
              out: Path) -> Path | None:
    """Save grids/<condition>.png, labels coloured and named by `table`; columns whose files are missing are left out."""
    import matplotlib.pyplot as plt

    fig = grid_figure(run, condition, cells, indices, table)
    if fig is None:
        return None
    path = save_figure(fig, out)
    plt.close(fig)
    return path
