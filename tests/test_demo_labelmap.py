"""Demo label input: class tables, decoding of every upload kind, palette snapping, resizing and bad files."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from demo.classes import ClassTable
from demo.labelmap import MAX_FILE_BYTES, MAX_SIDE, MIN_SIDE, decode_bytes, decode_file, resize_label
from scdm.config import LabelSpec
from scdm.label_io import index_png, snap_colors
from scdm.presets import ade20k_labels, world_labels
from scdm.world import CLASS_IDS, PALETTE, label_to_color, make_scene

SIZE = 64


@pytest.fixture(scope="module")
def table() -> ClassTable:
    return ClassTable.from_spec(world_labels())


@pytest.fixture(scope="module")
def label() -> np.ndarray:
    return make_scene(3, "test").label.astype(np.int64)


def png(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


# --- class tables ---------------------------------------------------------------------------------------------

def test_world_table_has_classes_and_unlabeled(table: ClassTable) -> None:
    assert table.class_ids == CLASS_IDS
    assert table.raw_ids[-1] == 0 and table.names[-1] == "unlabeled" and table.fill_id == 0 and table.has_unlabeled
    assert all(table.colors[table.raw_ids.index(r)] == PALETTE[r] for r in table.raw_ids)
    assert np.array_equal(table.colorize(make_scene(0, "test").label), label_to_color(make_scene(0, "test").label))


def test_table_without_palette_gets_distinct_colours() -> None:
    bare = LabelSpec(num_classes=151, raw_ids=ade20k_labels().raw_ids, unlabeled_id=0)  # no names, no palette
    t = ClassTable.from_spec(bare)  # raw 0 is a real channel in ADE20K's encoding
    assert len(t.raw_ids) == 151 and not t.has_unlabeled and t.fill_id == 0
    assert len(set(t.colors)) == 151 and t.names[0] == "class 1"


def test_table_refuses_ambiguous_palette() -> None:
    spec = LabelSpec(num_classes=2, palette=((1, 2, 3), (1, 2, 3)), class_names=("a", "b"))
    with pytest.raises(ValueError, match="same colour"):
        ClassTable.from_spec(spec)


def test_check_names_bad_ids(table: ClassTable) -> None:
    with pytest.raises(ValueError, match=r"label ids \[1, 200\] are not classes"):
        table.check(np.array([[1, 2], [200, 3]]))


# --- index maps -----------------------------------------------------------------------------------------------

def test_8bit_index_png_is_exact(table: ClassTable, label: np.ndarray) -> None:
    dec = decode_bytes(index_png(label), table, SIZE)
    assert np.array_equal(dec.label, label) and dec.notices == () and "8-bit index" in dec.source


def test_16bit_index_png_is_exact(table: ClassTable, label: np.ndarray) -> None:
    data = png(Image.fromarray(label.astype(np.uint16)))
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    dec = decode_bytes(data, table, SIZE)
    assert np.array_equal(dec.label, label) and "16-bit" in dec.source


def test_16bit_ids_above_255_are_reported(table: ClassTable, label: np.ndarray) -> None:
    bad = label.astype(np.uint16).copy()
    bad[0, 0] = 1000
    with pytest.raises(ValueError, match=r"1000"):
        decode_bytes(png(Image.fromarray(bad)), table, SIZE)


def test_out_of_range_ids_are_a_clear_error(table: ClassTable, label: np.ndarray) -> None:
    bad = label.copy()
    bad[:4, :4] = 250
    with pytest.raises(ValueError, match=r"\[250\] are not classes of this model \(250: 16 px\); valid raw ids are 2 building"):
        decode_bytes(index_png(bad), table, SIZE)


def test_palette_png_with_ids_as_indices(table: ClassTable, label: np.ndarray) -> None:
    im = Image.fromarray(label.astype(np.uint8), mode="L").convert("P")
    im.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])  # colours unrelated to the classes
    dec = decode_bytes(png(im), table, SIZE)
    assert np.array_equal(dec.label, label) and "indices read as raw ids" in dec.source


def test_palette_png_with_class_colours_in_any_order(table: ClassTable, label: np.ndarray) -> None:
    rgb = Image.fromarray(table.colorize(label))
    im = rgb.quantize(colors=16, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    dec = decode_bytes(png(im), table, SIZE)
    assert np.array_equal(dec.label, label) and "decoded by colour" in dec.source


def test_grey_rgb_of_ids_is_read_as_index(table: ClassTable, label: np.ndarray) -> None:
    dec = decode_bytes(png(Image.fromarray(label.astype(np.uint8)).convert("RGB")), table, SIZE)
    assert np.array_equal(dec.label, label) and any("index map" in n for n in dec.notices)


# --- colour-coded images --------------------------------------------------------------------------------------

def test_colour_png_is_exact(table: ClassTable, label: np.ndarray) -> None:
    dec = decode_bytes(png(Image.fromarray(table.colorize(label))), table, SIZE)
    assert np.array_equal(dec.label, label) and dec.colors is not None and dec.colors.snapped == 0


def test_rgba_transparent_pixels_become_unlabeled(table: ClassTable, label: np.ndarray) -> None:
    rgba = np.concatenate([table.colorize(label), np.full((SIZE, SIZE, 1), 255, np.uint8)], -1)
    rgba[:10, :, 3] = 0
    rgba[:10, :, :3] = 77  # colours under alpha 0 are arbitrary
    dec = decode_bytes(png(Image.fromarray(rgba)), table, SIZE)
    expect = label.copy()
    expect[:10] = 0
    assert np.array_equal(dec.label, expect) and dec.colors.transparent == 10 * SIZE


def test_jpeg_colour_label_is_snapped_and_reported(table: ClassTable, label: np.ndarray) -> None:
    big = table.colorize(label).repeat(4, 0).repeat(4, 1)  # 256 px, blocks of 4x4
    data = png(Image.fromarray(big), "JPEG", quality=90)
    dec = decode_bytes(data, table, SIZE)
    assert dec.colors.snapped > 0 and dec.colors.off_palette
    assert (dec.label == label).mean() > 0.97  # majority vote per 4x4 block removes most artefacts
    assert any("JPEG" in n for n in dec.notices) and any("resized 256x256 -> 64x64" in n for n in dec.notices)


def test_antialiased_strokes_snap_to_nearest_class(table: ClassTable) -> None:
    hi = Image.new("RGB", (256, 256), PALETTE[3])  # sky
    ImageDraw.Draw(hi).ellipse((40, 40, 200, 200), fill=PALETTE[5])  # tree
    img = hi.resize((64, 64), Image.Resampling.LANCZOS)  # blended edge colours
    ids, rep = snap_colors(np.asarray(img), table, blends=True)  # as the canvas decodes strokes
    assert set(np.unique(ids)) <= {3, 5} and rep.snapped > 0 and rep.unknown == 0
    assert "snapped" in rep.summary()


def test_few_unknown_colours_are_listed(table: ClassTable, label: np.ndarray) -> None:
    rgb = table.colorize(label)
    rgb[:2, :2] = (255, 255, 255)  # white is far from every class colour
    dec = decode_bytes(png(Image.fromarray(rgb)), table, SIZE)
    assert dec.colors.unknown == 4 and dec.colors.off_palette[0][:2] == ("#ffffff", 4)
    assert "#ffffff x4" in dec.report()


def test_photo_is_refused(table: ClassTable) -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="does not look like a label map"):
        decode_bytes(png(Image.fromarray(photo)), table, SIZE)


# --- sizes and bad files --------------------------------------------------------------------------------------

def test_majority_vote_downscale() -> None:
    lab = np.zeros((8, 8), np.int64)
    lab[:4, :4] = 3
    lab[0, 0:3] = 5  # 3 of 16 pixels: the block stays 3
    out, note = resize_label(lab, 2)
    assert out.tolist() == [[3, 0], [0, 0]] and "majority" in note


def test_nearest_resize_with_aspect_notice(table: ClassTable, label: np.ndarray) -> None:
    wide = np.repeat(label, 3, axis=1)[:48]  # 192 x 48
    dec = decode_bytes(index_png(wide), table, SIZE)
    assert dec.label.shape == (SIZE, SIZE)
    expect = "resized 192x48 -> 64x64 px (nearest neighbour); the aspect ratio was not kept"
    assert expect in dec.notices


def test_small_image_is_upscaled_with_notice(table: ClassTable) -> None:
    dec = decode_bytes(index_png(np.full((MIN_SIDE, MIN_SIDE), 3)), table, SIZE)
    assert dec.label.shape == (SIZE, SIZE) and (dec.label == 3).all() and "resized 8x8" in dec.report()


@pytest.mark.parametrize("shape", [(4, 4), (1, 100)])
def test_tiny_image_is_refused(table: ClassTable, shape: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_SIDE}x{MIN_SIDE}"):
        decode_bytes(index_png(np.full(shape, 3)), table, SIZE)


def test_huge_image_is_refused_before_decoding(table: ClassTable) -> None:
    data = png(Image.new("L", (MAX_SIDE + 1, 16), 3))  # small file, too many columns
    with pytest.raises(ValueError, match=f"limit is {MAX_SIDE} px per side"):
        decode_bytes(data, table, SIZE)


def test_large_file_is_refused(table: ClassTable, tmp_path) -> None:
    p = tmp_path / "big.png"
    p.write_bytes(b"\x89PNG" + bytes(MAX_FILE_BYTES))
    with pytest.raises(ValueError, match="MiB; the limit is"):
        decode_file(p, table, SIZE)


@pytest.mark.parametrize("data, match", [
    (b"", "the file is empty"),
    (b"hello, this is text", "not a readable image"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a readable image"),  # no EPS/Ghostscript
])
def test_non_images_are_refused(table: ClassTable, data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decode_bytes(data, table, SIZE)


def test_truncated_png_is_refused(table: ClassTable, label: np.ndarray) -> None:
    data = png(Image.fromarray(table.colorize(label)))
    with pytest.raises(ValueError, match="truncated or corrupt"):
        decode_bytes(data[: len(data) // 2], table, SIZE)


def test_jpeg_index_map_hint(table: ClassTable, label: np.ndarray) -> None:
    data = png(Image.fromarray(label.astype(np.uint8)), "JPEG", quality=50)
    try:
        decode_bytes(data, table, SIZE)
    except ValueError as e:
        assert "JPEG is lossy" in str(e)


@pytest.mark.parametrize("mode", ["1", "F"])
def test_unsupported_modes_are_refused(table: ClassTable, mode: str) -> None:
    im = Image.new(mode, (16, 16))
    with pytest.raises(ValueError, match="not a label map"):
        decode_bytes(png(im, "TIFF"), table, SIZE)


def test_animated_gif_uses_first_frame(table: ClassTable, label: np.ndarray) -> None:
    frames = [Image.fromarray(table.colorize(label)), Image.fromarray(table.colorize(np.full_like(label, 3)))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    dec = decode_bytes(buf.getvalue(), table, SIZE)
    assert np.array_equal(dec.label, label) and "2 frames" in dec.report()


def test_missing_upload_is_a_clear_error(table: ClassTable, tmp_path) -> None:
    with pytest.raises(ValueError, match="no file received"):
        decode_file(tmp_path / "nope.png", table, SIZE)


def test_index_png_round_trip_16bit() -> None:
    lab = np.array([[0, 300], [65535, 7]])
    back = np.asarray(Image.open(io.BytesIO(index_png(lab))))
    assert back.astype(np.int64).tolist() == lab.tolist()


def test_large_image_is_subsampled_first(table: ClassTable, label: np.ndarray) -> None:
    big = label.repeat(32, 0).repeat(32, 1)  # 2048 px
    dec = decode_bytes(index_png(big), table, SIZE)
    assert np.array_equal(dec.label, label)
    assert dec.notices[0] == "subsampled 2048x2048 -> 1024x1024 px (stride 2) before decoding"
