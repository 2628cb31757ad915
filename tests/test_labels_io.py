"""One module owns label maps (`scdm.labels`, `scdm.label_io`): for every dataset, synthetic maps painted in its
palette decode exactly from PNG and, away from boundaries, from JPEG (quality 95 and 75) with every guess reported;
index PNGs round trip; palette PNGs, RGBA, unknown colours and unknown ids are reported. The exact-decode rates are
printed at the end (`pytest tests/test_labels_io.py -q`)."""
from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from scdm.config import LabelSpec
from scdm.datasets import (ADE20K_CLASSES, ADE20K_UNLABELED, CITYSCAPES_CLASSES, DATASETS, ade20k_labels,
                           cityscapes_labels, dataset_labels)
from scdm.label_io import (FAR, LOSSY_EDGE, decode_image, index_png, read_index_png, read_label, snap_colors,
                           write_index_png)
from scdm.labels import (NOT_A_CLASS, NULL, UNKNOWN_COLOR, ClassTable, class_ids, fill_id, id_table, lookup_table,
                         raw_to_index, unlabeled_is_null, valid_ids)

SIZE = 256  # px per synthetic map
CELLS = 24  # Voronoi cells per map: boundaries at every angle, never aligned with the JPEG blocks
MARGIN = 16  # "away from boundaries": farther than one 4:2:0 JPEG MCU (16 px) from another class
RATES: dict[tuple[str, str], tuple[float, float, float, float, float]] = {}  # (dataset, format) -> rates, ms per map


def synthetic_maps(table: ClassTable, seed: int = 0) -> np.ndarray:
    """(N, SIZE, SIZE) raw ids: Voronoi cells whose classes run through every table entry, in shuffled rounds."""
    rng = np.random.default_rng(seed)
    n = -(-len(table.raw_ids) // CELLS) + 1
    order = np.concatenate([rng.permutation(len(table.raw_ids)) for _ in range(-(-n * CELLS // len(table.raw_ids)))])
    ids = np.asarray(table.raw_ids)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    maps = []
    for k in range(n):
        pts = rng.uniform(0, SIZE, (CELLS, 2))
        cell = ((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2).argmin(-1)
        maps.append(ids[order[k * CELLS:(k + 1) * CELLS]][cell])
    return np.stack(maps)


def encode(image: np.ndarray | Image.Image, fmt: str = "PNG", **kw) -> Image.Image:
    """Save to bytes and open again, as a file on disk would be."""
    buf = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buf, format=fmt, **kw)
    im = Image.open(io.BytesIO(buf.getvalue()))
    im.load()
    return im


def near(labels: np.ndarray, radius: int) -> np.ndarray:
    """Pixels with another id within `radius` px (scipy, independent of the module's own filter)."""
    size = 2 * radius + 1
    return ndimage.maximum_filter(labels, size, mode="nearest") != ndimage.minimum_filter(labels, size, mode="nearest")


@pytest.fixture(scope="module", params=DATASETS)
def dataset(request) -> tuple[str, ClassTable, np.ndarray]:
    table = ClassTable.from_spec(dataset_labels(request.param))
    maps = synthetic_maps(table)
    assert set(np.unique(maps)) == set(table.raw_ids)  # every class and the unlabeled entry are painted
    return request.param, table, maps


# --- colour-coded maps, every dataset ---------------------------------------------------------------------------

def test_png_decodes_exactly(dataset, tmp_path) -> None:
    name, table, maps = dataset
    times, whole = [], []
    for i, label in enumerate(maps):
        path = tmp_path / f"{i}.png"
        Image.fromarray(table.colorize(label)).save(path)
        t0 = time.perf_counter()
        dec = read_label(path, table)
        whole.append(time.perf_counter() - t0)
        assert np.array_equal(dec.ids, label), name
        rep = dec.colors
        assert (rep.exact, rep.snapped, rep.unknown, rep.ambiguous) == (label.size, 0, 0, 0)
        assert rep.summary() == "all pixels are exact palette colours"
        rgb = table.colorize(label)
        t0 = time.perf_counter()
        snap_colors(rgb, table)
        times.append(time.perf_counter() - t0)
    RATES[name, "PNG"] = (1.0, 1.0, 1.0, 1e3 * float(np.median(times)), 1e3 * float(np.median(whole)))


@pytest.mark.parametrize("quality", [95, 75])
def test_jpeg_is_exact_away_from_boundaries_and_every_guess_is_reported(dataset, quality: int) -> None:
    name, table, maps = dataset
    keys = {tuple(c) for c in table.colors}
    twins = {r for r, c in zip(table.raw_ids, table.colors)
             if any(0 < sum((a - b) ** 2 for a, b in zip(c, o)) <= 64 for o in table.colors)}  # within 8 levels
    total = right = inner = inner_right = twin_inner = twin_right = 0
    times, whole = [], []
    for label in maps:
        im = encode(table.colorize(label), "JPEG", quality=quality)
        t0 = time.perf_counter()
        dec = decode_image(im, table)  # the upload path: blends of two classes snap to the nearer one
        whole.append(time.perf_counter() - t0)
        rep, ids = dec.colors, dec.ids
        rgb = np.asarray(im.convert("RGB"))
        t0 = time.perf_counter()
        snap_colors(rgb, table, lossy=True)  # without the blend search
        times.append(time.perf_counter() - t0)
        exact = np.array([tuple(v) in keys for v in rgb.reshape(-1, 3).tolist()]).reshape(label.shape)
        assert rep.exact == exact.sum() and rep.exact + rep.snapped + rep.unknown == label.size
        assert rep.snapped > 0 and rep.guessed >= rep.snapped and "snapped" in rep.summary()
        wrong = ids != label
        # never silent: a wrong pixel was snapped or unknown (not an exact colour), or is an exact colour the report
        # counts as ambiguous (a near-twin class, or within LOSSY_EDGE px of a decoded boundary)
        silent = wrong & exact & ~np.isin(ids, list(twins)) & ~near(ids, LOSSY_EDGE)
        assert not silent.any(), f"{name} q{quality}: {silent.sum()} px silently wrong"
        assert rep.ambiguous >= (wrong & exact).sum()
        if twins & set(np.unique(label[exact])):
            assert set(rep.ambiguous_classes) >= {table.name_of(r) for r in twins & set(np.unique(ids[exact]))}
        interior = ~near(label, MARGIN)
        plain = interior & ~np.isin(label, list(twins))
        assert np.array_equal(ids[plain], label[plain]), f"{name} q{quality}: {(ids != label)[plain].sum()} px"
        total += label.size
        right += (~wrong).sum()
        inner += plain.sum()
        inner_right += (~wrong)[plain].sum()
        twin_inner += (interior & ~plain).sum()
        twin_right += (~wrong)[interior & ~plain].sum()
    assert inner > 0.05 * total
    RATES[name, f"JPEG q{quality}"] = (right / total, inner_right / inner,
                                       twin_right / twin_inner if twin_inner else float("nan"),
                                       1e3 * float(np.median(times)), 1e3 * float(np.median(whole)))


def test_standard_palettes_with_repeated_colours_decode_to_the_first_class() -> None:
    """ADE20K road and skyscraper share a colour, Cityscapes its void classes, pole/polegroup, car/license plate."""
    for spec, classes in ((ade20k_labels(), ADE20K_CLASSES + (ADE20K_UNLABELED,)), (cityscapes_labels(), CITYSCAPES_CLASSES)):
        table = ClassTable.from_spec(spec)
        standard = {c.id: c.color for c in classes}
        first = {}
        for r in table.raw_ids:
            first.setdefault(standard[r], r)
        label = synthetic_maps(table)[0]
        rgb = np.asarray([standard[r] for r in label.reshape(-1)], np.uint8).reshape(SIZE, SIZE, 3)
        dec = decode_image(encode(rgb), table)
        assert np.array_equal(dec.ids, np.vectorize(lambda r: first[standard[r]])(label))
        assert dec.colors.snapped == 0 and dec.colors.unknown == 0
    assert first[standard[17]] == 17 and first[standard[18]] == 17 and first[standard[34]] == 26  # Cityscapes


def test_near_duplicate_colours_never_take_each_others_pixels() -> None:
    table = ClassTable.from_spec(ade20k_labels())
    road, skyscraper = table.colors[table.raw_ids.index(7)], table.colors[table.raw_ids.index(49)]
    assert road == (140, 140, 140) and skyscraper == (140, 140, 141)  # one blue level apart (distinct_colors)
    label = np.full((32, 32), 7)
    label[:, 16:] = 49
    label[8:24, 8:24] = 99  # bottle (0, 255, 10), 7 levels from grass (4, 250, 7)
    label[12:20, 12:20] = 10
    assert np.array_equal(decode_image(encode(table.colorize(label)), table).ids, label)
    rep = decode_image(encode(table.colorize(label).repeat(8, 0).repeat(8, 1), "JPEG", quality=95), table).colors
    assert {"road", "skyscraper", "grass", "bottle"} <= set(rep.ambiguous_classes) and rep.ambiguous > 0


# --- index maps -------------------------------------------------------------------------------------------------

def test_index_png_round_trips_8_and_16_bit(tmp_path) -> None:
    small = np.arange(256).reshape(16, 16)
    wide = np.array([[0, 300], [65535, 7]])
    for ids, mode in ((small, "L"), (wide, "I;16")):
        write_index_png(tmp_path / "x.png", ids)
        back = read_index_png(tmp_path / "x.png")
        assert back.mode == mode and back.ids.dtype == np.int64 and np.array_equal(back.ids, ids)
        assert Image.open(io.BytesIO(index_png(ids))).mode == mode
    for bad in (np.array([[-1, 0]]), np.array([[65536, 0]]), np.zeros((2, 2), np.float32)):
        with pytest.raises(ValueError):
            index_png(bad)
    pal = Image.fromarray(small.astype(np.uint8)).convert("P")
    pal.putpalette([v for i in range(256) for v in (255 - i, i, 0)])
    pal.save(tmp_path / "p.png")
    source = read_index_png(tmp_path / "p.png")
    assert source.mode == "P" and np.array_equal(source.ids, small)
    write_index_png(tmp_path / "q.png", small[::-1], like=source)  # keeps the palette
    again = read_index_png(tmp_path / "q.png")
    assert again.mode == "P" and again.palette == source.palette and np.array_equal(again.ids, small[::-1])
    sixteen = read_index_png(tmp_path / "x.png")  # I;16
    assert Image.open(io.BytesIO(index_png(small, like=sixteen))).mode == "I;16"  # a 16-bit source stays 16-bit
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="rgb.png: PIL mode RGB is not an index map"):
        read_index_png(tmp_path / "rgb.png")


def test_index_pngs_of_every_dataset_decode_exactly(dataset) -> None:
    name, table, maps = dataset
    dec = decode_image(encode(Image.open(io.BytesIO(index_png(maps[0])))), table)
    assert np.array_equal(dec.ids, maps[0]) and dec.colors is None and "8-bit index" in dec.source
    wide = id_table(range(0, 3000, 7))  # raw ids above 255 need 16 bit
    label = np.asarray(wide.raw_ids)[np.arange(64 * 64) % len(wide.raw_ids)].reshape(64, 64)
    dec = decode_image(encode(Image.open(io.BytesIO(index_png(label)))), wide)
    assert np.array_equal(dec.ids, label) and "16-bit index" in dec.source


def test_unknown_ids_are_an_error_naming_ids_and_pixels() -> None:
    table = ClassTable.from_spec(dataset_labels("embedded"))
    label = np.full((16, 16), 3)
    label[:4, :4] = 200
    label[-2:, -2:] = 201
    message = r"label ids \[200, 201\] are not classes of this model \(200: 16 px, 201: 4 px\); valid raw ids are 2 building"
    with pytest.raises(ValueError, match=message):
        decode_image(encode(Image.open(io.BytesIO(index_png(label)))), table)
    with pytest.raises(ValueError, match=message):
        table.check(label)
    with pytest.raises(ValueError, match=r"label ids \[200, 201\] are not classes of this model \(200: 16 px"):
        raw_to_index(np.asarray(label)[None], dataset_labels("embedded"))


# --- palette PNGs and RGBA ---------------------------------------------------------------------------------------

def test_palette_png_in_the_models_palette_is_read_by_index(dataset) -> None:
    name, table, maps = dataset
    assert max(table.raw_ids) <= 255, "every dataset's ids fit an 8-bit palette PNG"
    im = Image.fromarray(maps[0].astype(np.uint8), mode="L").convert("P")
    colours = {r: c for r, c in zip(table.raw_ids, table.colors)}
    im.putpalette([v for i in range(256) for v in colours.get(i, (i, i, i))])
    dec = decode_image(encode(im), table)
    assert np.array_equal(dec.ids, maps[0]) and "in this model's palette" in dec.source and dec.colors is None


def test_palette_png_that_disagrees_is_decoded_by_colour_and_reported() -> None:
    table = ClassTable.from_spec(dataset_labels("embedded"))
    label = synthetic_maps(table)[0]
    im = Image.fromarray(table.colorize(label)).quantize(colors=len(table.raw_ids), method=Image.Quantize.FASTOCTREE,
                                                         dither=Image.Dither.NONE)  # class colours, other indices
    dec = decode_image(encode(im), table)
    assert np.array_equal(dec.ids, label) and "decoded by colour" in dec.source
    assert any("disagrees" in n for n in dec.notes) and dec.colors.exact == label.size
    unrelated = Image.fromarray(label.astype(np.uint8), mode="L").convert("P")
    unrelated.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])  # no class colours
    dec = decode_image(encode(unrelated), table)
    assert np.array_equal(dec.ids, label) and "indices read as raw ids" in dec.source and dec.notes


def test_rgba_transparent_pixels_become_the_fill_id() -> None:
    table = ClassTable.from_spec(dataset_labels("coco_stuff"))  # fill id: unlabeled 255
    label = synthetic_maps(table)[0]
    rgba = np.concatenate([table.colorize(label), np.full(label.shape + (1,), 255, np.uint8)], -1)
    rgba[:10, :, 3] = 0
    rgba[:10, :, :3] = 77  # colours under alpha 0 are arbitrary
    rgba[10:20, :, 3] = 200  # partly transparent paint still counts
    dec = decode_image(encode(rgba), table)
    expect = label.copy()
    expect[:10] = 255
    assert np.array_equal(dec.ids, expect) and dec.colors.transparent == 10 * SIZE and dec.colors.unknown == 0


# --- unknown colours, one unknown colour ----------------------------------------------------------------------------

def test_unknown_colours_are_listed_with_their_pixels() -> None:
    table = ClassTable.from_spec(dataset_labels("ade20k"))
    label = synthetic_maps(table)[0]
    rgb = table.colorize(label)
    rgb[:2, :2] = (255, 255, 255)  # 43 from the nearest ADE20K colour
    rgb[-3:, -2:] = (255, 128, 255)
    rgb[100, 100] = np.minimum(rgb[100, 100].astype(int) + 3, 255)  # a near colour: guessed, not unknown
    dec = decode_image(encode(rgb), table)
    rep = dec.colors
    assert rep.unknown == 10 and rep.snapped == 1 and rep.exact == label.size - 11
    assert rep.unknown_colors.tolist() == [[255, 128, 255], [255, 255, 255]] and rep.unknown_counts.tolist() == [6, 4]
    assert (dec.ids[:2, :2] == 0).all() and (dec.ids[-3:, -2:] == 0).all() and dec.ids[100, 100] == label[100, 100]
    assert "10 px of 2 unknown colours (#ff80ff x6, #ffffff x4) -> fill id" in rep.summary()


def test_one_unknown_colour_far_from_every_palette() -> None:
    for name in DATASETS:
        table = ClassTable.from_spec(dataset_labels(name))
        d = np.sqrt(((table.palette.astype(float) - UNKNOWN_COLOR) ** 2).sum(1)).min()
        assert d > FAR, name
        label = np.full((8, 8), table.raw_ids[0])
        label[0, 0] = 9999  # not an id of any dataset
        rgb = table.colorize(label)
        assert tuple(rgb[0, 0]) == UNKNOWN_COLOR
        ids, rep = snap_colors(rgb, table)
        assert ids[0, 0] == table.fill_id and rep.unknown == 1 and rep.unknown_colors.tolist() == [list(UNKNOWN_COLOR)]


def test_scdm_sample_reads_index_and_exact_colour_pngs_and_refuses_guesses(tmp_path) -> None:
    from scdm.__main__ import _read_label_png

    table = ClassTable.from_spec(dataset_labels("embedded"))
    label = synthetic_maps(table)[0]
    Image.fromarray(label.astype(np.uint8)).save(tmp_path / "index.png")
    Image.fromarray(table.colorize(label)).save(tmp_path / "colour.png")
    for name in ("index.png", "colour.png"):
        assert np.array_equal(_read_label_png(tmp_path / name, table), label)
    rgb = table.colorize(label)
    rgb[5, 5] = np.minimum(rgb[5, 5].astype(int) + 2, 255)  # one guessed pixel
    Image.fromarray(rgb).save(tmp_path / "guess.png")
    with pytest.raises(ValueError, match=r"guess.png: not exactly in the model's palette \(snapped 1 px"):
        _read_label_png(tmp_path / "guess.png", table)


# --- the encoding vocabulary ---------------------------------------------------------------------------------------

def test_class_valid_fill_and_null_ids() -> None:
    expect = {  # dataset: (unlabeled is null, fill id, valid ids count)
        "ade20k": (False, 0, 151), "celebamask_hq": (False, 0, 19), "coco_stuff": (False, 255, 183),
        "cityscapes": (False, 0, 35), "embedded": (True, 0, 13)}
    for name, (null, fill, n) in expect.items():
        spec = dataset_labels(name)
        table = ClassTable.from_spec(spec)
        assert (unlabeled_is_null(spec), fill_id(spec), len(valid_ids(spec))) == (null, fill, n), name
        assert set(table.raw_ids) == valid_ids(spec) and table.fill_id == fill and table.has_unlabeled == null
        lut = lookup_table(spec)
        assert [int(lut[r]) for r in class_ids(spec)] == list(range(spec.num_classes))
        assert all(int(lut[i]) == NOT_A_CLASS for i in range(len(lut)) if i not in valid_ids(spec))
    assert int(lookup_table(dataset_labels("embedded"))[0]) == NULL
    bare = LabelSpec(num_classes=3)
    assert class_ids(bare) == (0, 1, 2) and fill_id(bare) == 0 and valid_ids(bare) == {0, 1, 2}


@pytest.fixture(scope="module", autouse=True)
def rates_table(pytestconfig):
    """After this module's tests: print what the decoding tests measured (exact-decode rates per dataset and format)."""
    yield
    if not RATES:
        return
    lines = ["", "exact-decode rate         all px  interior*  interior, near-twins**  ms/map: snap_colors  decode***"]
    for (name, fmt), (all_px, inner, twins, snap, whole) in sorted(RATES.items()):
        lines.append(f"{name:14s} {fmt:9s} {100 * all_px:6.2f}%   {100 * inner:6.2f}%   "
                     f"{'    n/a' if np.isnan(twins) else f'{100 * twins:6.2f}%'}                  {snap:6.1f}  {whole:9.1f}")
    lines.append(f"* >= {MARGIN} px from another class, classes without a near-twin colour; ** classes with a colour "
                 f"within 8 levels of another's (counted as ambiguous); *** PNG: read_label of the file, JPEG: "
                 f"decode_image (with the blend search)")
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n".join(lines))
