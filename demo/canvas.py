"""The painting canvas: a Gradio ImageEditor whose brush palette is the model's class colours.

The canvas shows the label at `canvas_side(size)` px (a whole multiple of the model size); painted pixels are
snapped to the palette (the browser antialiases strokes) and voted down to the model resolution.
"""
from __future__ import annotations

from typing import Any

import gradio as gr
import numpy as np

from scdm.label_io import snap_colors

from .classes import ClassTable, first_brush_id, hex_color
from .labelmap import DecodedLabel, resize_label

CANVAS_TARGET = 256  # on-screen canvas side in px; big enough to paint a 64 px label comfortably


def canvas_side(size: int) -> int:
    """Canvas side for a model resolution: a whole multiple of `size`, about CANVAS_TARGET px."""
    return size * max(1, round(CANVAS_TARGET / size))


def label_rgba(label: np.ndarray, table: ClassTable, side: int) -> np.ndarray:
    """(S, S) ids -> opaque (side, side, 4) uint8 colour image, upscaled by nearest neighbour."""
    rgb = table.colorize(label)
    f = side // label.shape[0]
    rgb = rgb.repeat(f, 0).repeat(f, 1)
    return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)


def canvas_value(label: np.ndarray, table: ClassTable, size: int) -> dict[str, Any]:
    """An ImageEditor value whose background is `label` and which has no strokes yet."""
    bg = label_rgba(label, table, canvas_side(size))
    return {"background": bg, "layers": [], "composite": bg}


def blank_label(table: ClassTable, size: int, raw_id: int | None = None) -> np.ndarray:
    """(size, size) label filled with `raw_id` (the fill id by default): the "fill canvas" tool."""
    rid = table.fill_id if raw_id is None else raw_id
    if rid not in table.raw_ids:
        raise ValueError(f"cannot fill with id {rid}: not a class of this model ({table.describe_ids()})")
    return np.full((size, size), rid, np.int64)


def make_brush(table: ClassTable, size: int, raw_id: int | None = None) -> gr.Brush:
    """The class-colour brush, its default colour the class `raw_id` (the first real class by default)."""
    rid = first_brush_id(table) if raw_id is None else raw_id
    if rid not in table.raw_ids:
        raise ValueError(f"cannot paint with id {rid}: not a class of this model ({table.describe_ids()})")
    colors = [hex_color(c) for c in table.colors]
    return gr.Brush(colors=colors, default_color=colors[table.raw_ids.index(rid)], color_mode="fixed",
                    default_size=max(2, canvas_side(size) // 24))


def make_editor(table: ClassTable, size: int, start: np.ndarray | None = None, **kwargs: Any) -> gr.ImageEditor:
    """The canvas component: fixed palette brush, eraser, no crop/resize or uploads (those bypass decoding)."""
    side = canvas_side(size)
    start = blank_label(table, size) if start is None else start
    return gr.ImageEditor(
        value=canvas_value(start, table, size), type="numpy", image_mode="RGBA", format="png",
        canvas_size=(side, side), fixed_canvas=True, sources=[], transforms=[], layers=False,
        brush=make_brush(table, size), eraser=gr.Eraser(default_size=max(2, side // 16)), **kwargs)


def brush_update(table: ClassTable, size: int, raw_id: int) -> gr.ImageEditor:
    """An editor update that only changes the brush: the picked class becomes its colour (the canvas is kept)."""
    return gr.ImageEditor(brush=make_brush(table, size, raw_id))


def decode_canvas(value: dict[str, Any] | None, table: ClassTable, size: int) -> DecodedLabel:
    """An ImageEditor value -> label at `size` px; empty canvases raise a ValueError saying what to do."""
    empty = ValueError("the canvas is empty: paint some classes, upload a label map or pick an example")
    image = None if value is None else value.get("composite")
    if image is None and value is not None:
        image = value.get("background")
    if image is None:
        raise empty
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f"unexpected canvas image of shape {image.shape}")
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    ids, report = snap_colors(image, table, blends=True)  # antialiased strokes: blends of two class colours
    h, w = ids.shape
    if h != w:  # the editor should always send a square canvas; never trust it
        s = min(h, w)
        ids = ids[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    label, _ = resize_label(ids, size)
    if (label == table.fill_id).all():
        raise empty
    notes = [report.summary()] if report.snapped else ["no antialiased pixels to snap"]
    return DecodedLabel(label, "canvas", tuple(notes), report)
