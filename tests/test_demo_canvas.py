"""Demo canvas: the brush palette, and editor values -> labels (round trip, antialiasing, empty canvases)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from demo.canvas import blank_label, canvas_side, canvas_value, decode_canvas, make_editor
from demo.classes import ClassTable, hex_color
from scdm.presets import world_labels
from scdm.world import PALETTE, make_scene

SIZE = 64


@pytest.fixture(scope="module")
def table() -> ClassTable:
    return ClassTable.from_spec(world_labels())


def test_canvas_side_is_a_whole_multiple() -> None:
    assert canvas_side(64) == 256 and canvas_side(32) == 256 and canvas_side(256) == 256 and canvas_side(100) == 300


def test_canvas_round_trip_is_exact(table: ClassTable) -> None:
    label = make_scene(1, "test").label.astype(np.int64)
    value = canvas_value(label, table, SIZE)
    assert value["composite"].shape == (256, 256, 4)
    dec = decode_canvas(value, table, SIZE)
    assert np.array_equal(dec.label, label) and dec.colors.snapped == 0


def test_antialiased_stroke_is_snapped_and_voted_down(table: ClassTable) -> None:
    label = np.full((SIZE, SIZE), 3, np.int64)  # sky
    bg = Image.fromarray(canvas_value(label, table, SIZE)["composite"])
    hi = bg.resize((1024, 1024), Image.Resampling.NEAREST)
    ImageDraw.Draw(hi).line((100, 100, 900, 600), fill=PALETTE[2] + (255,), width=60)  # a building stroke
    stroke = hi.resize((256, 256), Image.Resampling.BOX)  # the browser's antialiasing: coverage-weighted blends
    dec = decode_canvas({"background": None, "layers": [], "composite": np.asarray(stroke)}, table, SIZE)
    assert set(np.unique(dec.label)) == {2, 3} and dec.colors.snapped > 0 and dec.colors.unknown == 0
    assert "snapped" in dec.notices[0]
    assert (dec.label == 2).sum() > 100


def test_transparent_canvas_pixels_are_unlabeled(table: ClassTable) -> None:
    rgba = np.zeros((256, 256, 4), np.uint8)
    rgba[:128, :, :] = PALETTE[5] + (255,)
    dec = decode_canvas({"background": None, "layers": [], "composite": rgba}, table, SIZE)
    assert (dec.label[:32] == 5).all() and (dec.label[32:] == 0).all()


@pytest.mark.parametrize("value", [
    None,
    {"background": None, "layers": [], "composite": None},
    {"background": None, "layers": [], "composite": np.zeros((256, 256, 4), np.uint8)},  # cleared canvas
    "blank",
])
def test_empty_canvas_is_a_clear_error(table: ClassTable, value) -> None:
    if value == "blank":
        value = canvas_value(blank_label(table, SIZE), table, SIZE)
    with pytest.raises(ValueError, match="the canvas is empty"):
        decode_canvas(value, table, SIZE)


def test_fill_refuses_unknown_ids(table: ClassTable) -> None:
    assert (blank_label(table, SIZE, 3) == 3).all()
    with pytest.raises(ValueError, match="not a class"):
        blank_label(table, SIZE, 99)


def test_editor_has_a_fixed_class_palette(table: ClassTable) -> None:
    ed = make_editor(table, SIZE)
    assert ed.brush.colors == [hex_color(c) for c in table.colors] and ed.brush.color_mode == "fixed"
    assert ed.brush.default_color == hex_color(PALETTE[2])  # the first class, not "unlabeled"
    assert ed.sources == [] and ed.canvas_size == (256, 256) and ed.fixed_canvas and ed.format == "png"
