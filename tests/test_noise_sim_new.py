"""noise_sim kinds users produce that the paper never tried: partial maps, unpainted blobs, a global warp and
colour-coded JPEG labels. The shared contract (tests/test_noise_sim.py) runs on them too; here: structured
world maps at 64 and 256 px, and what each kind may and may not change."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import noise_sim
from noise_sim import colour, morph
from scdm.label_io import snap_colors
from conftest import gen  # noqa: E402

NEW = ("partial", "blobs", "warp", "colour")
SEVERITIES = (0.0, 0.25, 0.5, 0.75, 1.0)
NESTED = ("partial", "blobs")  # changed sets nested in severity: monotone per map, not only on average


pytestmark = pytest.mark.usefixtures("one_thread")  # small maps: one torch thread is fastest


@functools.lru_cache(maxsize=None)
def _world(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from scdm.world import WorldConfig, make_split

    split = make_split("test", n, WorldConfig(size=size))
    return torch.from_numpy(split["labels"]).long(), torch.from_numpy(split["instances"]).long()


def world(n: int = 8, size: int = 64) -> torch.Tensor:
    """Structured label maps of the embedded world (12 ADE20K classes, no unlabeled pixels)."""
    return _world(n, size)[0].clone()


def world_instances(n: int = 8, size: int = 64) -> torch.Tensor:
    return _world(n, size)[1].clone()


def extra(kind: str) -> dict:
    """World maps use the world's own palette for colour (ADE20K ids, ADE20K colours, 12 classes)."""
    return {"dataset": "embedded"} if kind == "colour" else {}


def ids(x: torch.Tensor) -> set[int]:
    return set(x.unique().tolist())


# ---- the contract on structured maps ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", NEW)
@pytest.mark.parametrize("size", [64, 256])
def test_identity_at_zero_and_changed_fraction_grows(kind, size):
    x = world(8 if size == 64 else 2, size)
    assert torch.equal(noise_sim.corrupt(x, kind, severity=0.0, generator=gen(), **extra(kind)), x)
    per_map = torch.stack([noise_sim.changed_fraction(x, noise_sim.corrupt(x, kind, severity=s, generator=gen(3),
                                                                           **extra(kind)))
                           for s in SEVERITIES], 1)  # (B, S)
    mean = per_map.mean(0).tolist()
    assert mean[0] == 0.0 and mean[-1] > 0.02, mean
    assert all(b >= a for a, b in zip(mean, mean[1:])), mean
    if kind in NESTED:
        assert bool((per_map.diff(dim=1) >= 0).all())


@pytest.mark.parametrize("kind", NEW)
def test_seeded_and_batch_equals_one_by_one(kind):
    x, inst = world(4), world_instances(4)
    a = noise_sim.corrupt(x, kind, severity=0.6, generator=gen(5), instances=inst, **extra(kind))
    b = noise_sim.corrupt(x, kind, severity=0.6, generator=gen(5), instances=inst, **extra(kind))
    assert torch.equal(a, b)
    g = gen(5)
    singles = [noise_sim.corrupt(x[i], kind, severity=0.6, generator=g, instances=inst[i], **extra(kind))
               for i in range(4)]
    assert torch.equal(a, torch.stack(singles))
    if kind != "partial":  # partial has no randomness
        assert not torch.equal(a, noise_sim.corrupt(x, kind, severity=0.6, generator=gen(6), instances=inst,
                                                     **extra(kind)))


def test_severity_rules():
    assert noise_sim.resolve_params("partial", 1.0) == {"drop": 1.0, "max_keep": None}
    assert noise_sim.resolve_params("blobs", 1.0)["area"] == 0.5
    assert noise_sim.resolve_params("warp", 0.5)["amplitude"] == 8.0
    assert noise_sim.resolve_params("colour", 1.0) == {"quality": 10, "scale": 4.0, "subsampling": "auto",
                                                       "dataset": "ade20k", "far": colour.FAR}
    assert noise_sim.resolve_params("colour", 0.5)["scale"] == 1.0 and noise_sim.resolve_params("colour")["quality"] == 75


# ---- partial --------------------------------------------------------------------------------------------


def reference_segments(labels: np.ndarray, instances: np.ndarray | None = None) -> list[np.ndarray]:
    """4-connected segments of equal (class, instance), as boolean masks, via scipy."""
    import scipy.ndimage as ndimage
    key = labels.astype(np.int64) if instances is None else labels.astype(np.int64) * 100_000 + instances
    masks = []
    for value in np.unique(key):
        lab, n = ndimage.label(key == value)
        masks += [lab == k for k in range(1, n + 1)]
    return masks


@pytest.mark.parametrize("use_instances", [False, True])
@pytest.mark.parametrize("drop", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_partial_keeps_exactly_the_k_largest_segments(drop, use_instances):
    x, inst = world(4), world_instances(4)
    out = noise_sim.corrupt(x, "partial", drop=drop, instances=inst if use_instances else None)
    for b in range(4):
        segments = reference_segments(x[b].numpy(), inst[b].numpy() if use_instances else None)
        areas = sorted((int(m.sum()) for m in segments), reverse=True)
        n = len(segments)
        k = max(1, n - int(np.floor(drop * n + 1e-9)))
        kept = [m for m in segments if (out[b].numpy()[m] == x[b].numpy()[m]).all()]
        dropped = [m for m in segments if (out[b].numpy()[m] == 0).all()]
        assert len(kept) == k and len(kept) + len(dropped) == n  # every segment kept or dropped whole
        assert sorted((int(m.sum()) for m in kept), reverse=True) == areas[:k]  # the k largest (ties: any)


def test_partial_by_hand_ties_max_keep_and_unlabeled():
    x = torch.full((1, 20, 20), 3)  # background: 400 - 36 - 16 - 16 - 9 - 16 = 307 px
    x[:, 1:7, 1:7] = 5  # 36 px
    x[:, 10:14, 1:5] = 7  # 16 px, first in raster order of the two 16 px segments
    x[:, 10:14, 10:14] = 5  # 16 px, a second segment of class 5
    x[:, 16:19, 16:19] = 9  # 9 px
    x[:, 0:4, 15:19] = 0  # 16 px unlabeled: never counted, never kept as a label
    assert torch.equal(noise_sim.corrupt(x, "partial", drop=0.0), x)
    only = noise_sim.corrupt(x, "partial", severity=1.0)
    assert ids(only) == {0, 3} and int((only == 3).sum()) == 307  # severity 1: the single largest segment
    three = noise_sim.corrupt(x, "partial", drop=0.0, max_keep=3)  # 3 largest: background, 36 px, first 16 px
    assert (three[0, 10:14, 1:5] == 7).all() and (three[0, 10:14, 10:14] == 0).all() and ids(three) == {0, 3, 5, 7}
    # 5 labelled segments, drop 0.5 -> K = 5 - 2 = 3
    assert torch.equal(noise_sim.corrupt(x, "partial", drop=0.5), three)


# ---- blobs ----------------------------------------------------------------------------------------------


def test_blobs_only_write_unlabeled_exact_area_and_nested():
    x = world(4)
    previous = torch.zeros_like(x, dtype=torch.bool)
    for area in (0.05, 0.2, 0.35, 0.5):
        out = noise_sim.corrupt(x, "blobs", area=area, generator=gen(2))
        changed = out != x
        assert (out[changed] == 0).all()
        assert changed.flatten(1).sum(1).tolist() == [round(area * 64 * 64)] * 4  # world maps have no unlabeled
        assert bool((changed | ~previous).all())  # nested: earlier blobs stay blobs
        previous = changed
    blob = (noise_sim.corrupt(x, "blobs", area=0.3, generator=gen(2)) == 0).long()
    cc = morph.connected_components(blob)
    n_blobs = int(blob.view(-1)[cc.start[cc.names()]].sum())
    assert 4 <= n_blobs < 4 * 8  # a few smooth blobs per map, not speckle
    with_unlabeled = x.clone()
    with_unlabeled[:, :8] = 0
    out = noise_sim.corrupt(with_unlabeled, "blobs", area=0.3, generator=gen(2))
    assert ((out == with_unlabeled) | (out == 0)).all()


# ---- warp -----------------------------------------------------------------------------------------------


def square_dilate(mask: torch.Tensor, r: int) -> torch.Tensor:
    return F.max_pool2d(mask.float().unsqueeze(1), 2 * r + 1, stride=1, padding=r)[:, 0].bool()


@pytest.mark.parametrize("amplitude", [2, 5, 12])
def test_warp_moves_boundaries_by_at_most_the_amplitude(amplitude):
    x = world(6)
    out = noise_sim.corrupt(x, "warp", amplitude=float(amplitude), generator=gen(amplitude))
    assert (out != x).any()
    for c in ids(x):  # every output pixel's class is present in the input within the amplitude
        assert not ((out == c) & ~square_dilate(x == c, amplitude)).any()
    kept = [len(ids(out[b]) & ids(x[b])) / len(ids(x[b])) for b in range(6)]
    assert all(ids(out[b]) <= ids(x[b]) for b in range(6)) and np.mean(kept) >= 0.9
    assert torch.equal(noise_sim.corrupt(x, "warp", amplitude=0.0, generator=gen()), x)


def test_warp_is_global_and_shaky_is_local():
    """warp's displacement varies over the map (2 cells, 128 px here), shaky's every 32 px."""
    x = torch.zeros(1, 256, 256, dtype=torch.long)
    x[:, :, 128:] = 3  # one straight vertical boundary
    for seed in range(3):
        w = noise_sim.corrupt(x, "warp", amplitude=6.0, generator=gen(seed))
        s = noise_sim.corrupt(x, "shaky", amplitude=6.0, generator=gen(seed))
        # where the boundary lands in each row: a global field bends it gently, a local one wiggles it
        w_pos = (w[0] == 3).float().argmax(1).float()
        s_pos = (s[0] == 3).float().argmax(1).float()
        assert w_pos.diff().abs().sum() < s_pos.diff().abs().sum()


# ---- colour ---------------------------------------------------------------------------------------------


def test_colour_lossless_round_trip_is_exact_and_low_severity_changes_almost_nothing():
    for size, n in ((64, 8), (256, 2)):
        x = world(n, size)
        png = noise_sim.corrupt(x, "colour", quality=None, scale=1.0, dataset="embedded", generator=gen())
        assert torch.equal(png, x)  # PNG-like: the palette coding itself loses nothing
        low = noise_sim.corrupt(x, "colour", severity=0.05, dataset="embedded", generator=gen())
        assert float(noise_sim.changed_fraction(x, low).mean()) < 0.002


def test_colour_high_severity_changes_boundary_pixels():
    x = world(8)
    out = noise_sim.corrupt(x, "colour", severity=1.0, dataset="embedded", generator=gen(1))
    changed = out != x
    boundary = morph.edges4(x)
    assert float(changed[boundary].double().mean()) > 0.5  # most boundary pixels are hit ...
    dist = morph.l1_distance(boundary)
    assert float(changed[dist > 8].double().mean()) < 0.02  # ... region interiors hardly
    assert ids(out) <= set(colour.palette_table("embedded", 0).raw_ids)  # palette ids or unlabeled only
    assert (out[changed] == 0).any()  # far (blended) colours became unlabeled


def test_snap_to_palette_nearest_and_far():
    table = colour.palette_table("embedded", 0)
    grass = torch.tensor(table.colors[table.raw_ids.index(10)])
    magenta = torch.tensor([255, 0, 255])  # 143 from the nearest world colour, field (112, 9, 255)
    rgb = torch.stack([grass, grass + torch.tensor([3, -4, 2]), magenta]).clamp(0, 255)
    rgb = rgb.to(torch.uint8).view(1, 3, 3).numpy()
    assert snap_colors(rgb, table, far=40.0, unknown_id=0)[0].tolist() == [[10, 10, 0]]
    assert snap_colors(rgb, table, far=None, unknown_id=0)[0][0, 2] == 30  # always snap


def test_colour_palettes_and_unlabeled():
    for dataset in colour.DATASETS:
        table = colour.palette_table(dataset, 0)
        assert len(set(table.colors)) == len(table.raw_ids) and table.colors[table.raw_ids.index(0)] == (0, 0, 0)
    x = torch.full((1, 16, 16), 3)
    x[:, 4:12, 4:12] = 255
    coco = noise_sim.corrupt(x, "colour", quality=None, dataset="coco_stuff", unlabeled=255)  # black is unlabeled
    assert torch.equal(coco, x)
    with pytest.raises(ValueError, match="no colour"):
        noise_sim.corrupt(torch.full((8, 8), 150), "colour", severity=0.5, dataset="embedded")  # flag: not a world id


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("partial", {"drop": 1.5}, "drop"),
        ("partial", {"drop": 0.5, "max_keep": 0}, "max_keep"),
        ("blobs", {"area": -0.1}, "area"),
        ("blobs", {"area": 0.2, "wavelength": 0}, "wavelength"),
        ("warp", {"amplitude": -1.0}, "amplitude"),
        ("warp", {"amplitude": 2.0, "cells": 0}, "cells"),
        ("colour", {"quality": 0}, "quality"),
        ("colour", {"quality": 101}, "quality"),
        ("colour", {"quality": 50, "scale": 0.5}, "scale"),
        ("colour", {"quality": 50, "subsampling": "4:1:1"}, "subsampling"),
        ("colour", {"quality": 50, "dataset": "pascal"}, "dataset"),
        ("colour", {"quality": 50, "far": -1.0}, "far"),
        ("colour", {"severity": 0.5, "quality": 50}, "not both"),
    ],
)
def test_bad_parameters_raise_value_error(kind, params, message):
    with pytest.raises(ValueError, match=message):
        noise_sim.corrupt(world(1), kind, generator=gen(), **params)


def test_encoding_options_give_colour_the_labels_palette() -> None:
    """`encoding_options`: the one place that says what a kind needs to write only an encoding's ids (the demo and
    the bench both call it)."""
    from scdm.datasets import dataset_labels
    from scdm.labels import ClassTable

    world, ade = (ClassTable.from_spec(dataset_labels(n)) for n in ("embedded", "ade20k"))
    assert noise_sim.encoding_options("colour", world) == {"dataset": "embedded"}
    assert noise_sim.encoding_options("colour", ade) == {"dataset": "ade20k"}
    assert all(noise_sim.encoding_options(k, world) == {} for k in noise_sim.KINDS if k != "colour")
    other = ClassTable((0, 1, 2), ("a", "b", "c"), ((1, 2, 3), (4, 5, 6), (7, 8, 9)), fill_id=0, has_unlabeled=False)
    with pytest.raises(ValueError, match="known dataset's"):
        noise_sim.encoding_options("colour", other)
    with pytest.raises(ValueError, match="unknown kind"):
        noise_sim.encoding_options("smudge", world)
