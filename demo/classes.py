"""The classes a user can paint: `scdm.labels.ClassTable`, read from a model's `LabelSpec`, and its HTML legend.

Every colour-coded image the demo reads or shows goes through one `ClassTable`: the brush palette, the
legend, palette snapping of uploads and canvas strokes, and the colour coding of labels and y_t.
"""
from __future__ import annotations

from scdm.labels import ClassTable, hex_color

__all__ = ["ClassTable", "hex_color", "legend_html"]


def legend_html(table: ClassTable) -> str:
    """An HTML legend: a swatch and a name per entry, in brush-palette order."""
    items = "".join(
        f'<span class="scdm-swatch"><i style="background:{hex_color(c)}"></i>{n} <small>({r})</small></span>'
        for r, n, c in zip(table.raw_ids, table.names, table.colors))
    return f'<div class="scdm-legend">{items}</div>'
