"""The classes a user can paint: `scdm.labels.ClassTable`, read from a model's `LabelSpec`, its HTML legend and
the "name (raw id)" choices of the searchable class pickers.

Every colour-coded image the demo reads or shows goes through one `ClassTable`: the brush palette, the
legend, palette snapping of uploads and canvas strokes, and the colour coding of labels and y_t.
"""
from __future__ import annotations

import re

from scdm.labels import ClassTable, hex_color

__all__ = ["ClassTable", "hex_color", "legend_html", "class_choices", "choice_of", "parse_class", "first_brush_id",
           "LEGEND_OPEN_MAX"]

LEGEND_OPEN_MAX = 20  # tables with more classes show their legend collapsed (ADE20K has 151 entries)
_CHOICE = re.compile(r"^(.*) \((\d+)\)$")


def legend_html(table: ClassTable) -> str:
    """An HTML legend: a swatch and a name per entry, in brush-palette order."""
    items = "".join(
        f'<span class="scdm-swatch"><i style="background:{hex_color(c)}"></i>{n} <small>({r})</small></span>'
        for r, n, c in zip(table.raw_ids, table.names, table.colors))
    return f'<div class="scdm-legend">{items}</div>'


def choice_of(table: ClassTable, raw_id: int) -> str:
    """The picker text of one entry: "tree (5)"."""
    return f"{table.name_of(raw_id)} ({raw_id})"


def class_choices(table: ClassTable) -> list[str]:
    """Every entry as "name (raw id)", in palette order: what a filterable dropdown searches as you type."""
    return [choice_of(table, r) for r in table.raw_ids]


def first_brush_id(table: ClassTable) -> int:
    """The brush's starting class: the first real class (not "unlabeled")."""
    return next(r for r in table.raw_ids if r != table.fill_id or not table.has_unlabeled)


def parse_class(table: ClassTable, choice: str | int | None) -> int:
    """"tree (5)", "tree" or 5 -> raw id 5; a ValueError saying what to type otherwise."""
    if isinstance(choice, str):
        text = choice.strip()
        m = _CHOICE.match(text)
        if m and int(m.group(2)) in table.raw_ids and table.name_of(int(m.group(2))) == m.group(1):
            return int(m.group(2))
        if text in table.names:
            return table.raw_ids[table.names.index(text)]
        if text.isdigit() and int(text) in table.raw_ids:
            return int(text)
    elif isinstance(choice, int) and not isinstance(choice, bool) and choice in table.raw_ids:
        return choice
    raise ValueError(f"unknown class {choice!r}: type part of a class name and pick it from the list "
                     f"({table.describe_ids()})")
