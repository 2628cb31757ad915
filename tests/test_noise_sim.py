"""noise_sim: the corrupt() contract, the paper's three kinds against their definitions, seeding, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import noise_sim
from noise_sim import morph, rng
from noise_sim.registry import MAX_ID
from conftest import gen  # noqa: E402

KINDS = noise_sim.KINDS


pytestmark = pytest.mark.usefixtures("one_thread")  # small maps: one torch thread is fastest


def scenes(n: int = 4, size: int = 48, seed: int = 0) -> torch.Tensor:
    """Structured maps: Voronoi cells of a few classes plus small discs (ADE20K-like raw ids)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    classes = torch.tensor([2, 3, 5, 7, 10, 12, 17, 22, 30, 35])
    out = []
    for _ in range(n):
        sy, sx = torch.rand(6, generator=g) * size, torch.rand(6, generator=g) * size
        d = (yy[None] - sy.view(-1, 1, 1)) ** 2 + (xx[None] - sx.view(-1, 1, 1)) ** 2
        lab = classes[torch.randint(0, 10, (6,), generator=g)][d.argmin(0)]
        for _ in range(4):
            cy, cx = (torch.rand(2, generator=g) * size).tolist()
            r = 1.5 + 3 * float(torch.rand(1, generator=g))
            c = classes[int(torch.randint(0, 10, (1,), generator=g))]
            lab = torch.where((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, c, lab)
        out.append(lab)
    return torch.stack(out).long()


# ---- the contract shared by every kind ----------------------------------------------------------------


def test_kinds_are_registered():
    assert set(KINDS) == {"ds", "edge", "random", "shaky", "overpaint", "underpaint", "polygon", "confusion",
                          "missing", "scribble", "mixture", "partial", "blobs", "warp", "colour"}
    assert noise_sim.PAPER_KINDS == ("ds", "edge", "random")


@pytest.mark.parametrize("kind", KINDS)
def test_severity_zero_is_an_exact_copy(kind):
    x = scenes(2)
    y = noise_sim.corrupt(x, kind, severity=0.0, generator=gen())
    assert torch.equal(x, y) and y.dtype == x.dtype and y.data_ptr() != x.data_ptr()


@pytest.mark.parametrize("kind", KINDS)
def test_changed_fraction_grows_with_severity(kind):
    x = scenes(6, 64, seed=1)
    fractions = [float(noise_sim.changed_fraction(x, noise_sim.corrupt(x, kind, severity=s, generator=gen(3))).mean())
                 for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert fractions[0] == 0.0 and fractions[-1] > 0.01
    assert all(b >= a for a, b in zip(fractions, fractions[1:])), fractions


@pytest.mark.parametrize("kind", KINDS)
def test_shape_dtype_and_input_untouched(kind):
    x = scenes(2).to(torch.uint8)
    before = x.clone()
    y = noise_sim.corrupt(x, kind, severity=0.6, generator=gen())
    assert torch.equal(x, before)
    assert y.shape == x.shape and y.dtype == torch.uint8
    single = noise_sim.corrupt(x[0].int(), kind, severity=0.6, generator=gen())
    assert single.shape == x[0].shape and single.dtype == torch.int32


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_determinism(kind):
    x = scenes(3)
    a = noise_sim.corrupt(x, kind, severity=0.7, generator=gen(5))
    b = noise_sim.corrupt(x, kind, severity=0.7, generator=gen(5))
    assert torch.equal(a, b)
    if kind not in ("ds", "edge", "missing", "partial"):  # no randomness (missing: only with its option p < 1)
        assert any(not torch.equal(a, noise_sim.corrupt(x, kind, severity=0.7, generator=gen(s))) for s in (6, 7))


@pytest.mark.parametrize("kind", KINDS)
def test_batch_equals_one_map_at_a_time(kind):
    """One seed per map, drawn in order: a batch gives the same maps as sequential single calls."""
    x = scenes(3)
    inst = scenes(3, seed=9)
    batch = noise_sim.corrupt(x, kind, severity=0.6, generator=gen(11), instances=inst)
    g = gen(11)
    singles = [noise_sim.corrupt(x[i], kind, severity=0.6, generator=g, instances=inst[i]) for i in range(3)]
    assert torch.equal(batch, torch.stack(singles))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("kind", KINDS)
def test_cpu_and_gpu_agree(kind):
    x = scenes(3)
    cpu = noise_sim.corrupt(x, kind, severity=0.6, generator=gen(2))
    gpu = noise_sim.corrupt(x.cuda(), kind, severity=0.6, generator=gen(2))
    assert gpu.device.type == "cuda" and torch.equal(cpu, gpu.cpu())


def test_changed_fraction_helper():
    a = torch.zeros(2, 4, 4, dtype=torch.long)
    b = a.clone()
    b[1, :2] = 1
    assert noise_sim.changed_fraction(a, b).tolist() == [0.0, 0.5]


# ---- severity -> parameters ---------------------------------------------------------------------------


def test_paper_severity_sweeps_and_defaults():
    assert noise_sim.resolve_params("ds") == {"factor": 4}
    assert noise_sim.resolve_params("edge") == {"radius": 2}
    assert noise_sim.resolve_params("random") == {"p": 0.1}
    assert noise_sim.resolve_params("ds", 0.0)["factor"] == 1 and noise_sim.resolve_params("ds", 1.0)["factor"] == 32
    assert noise_sim.resolve_params("ds", 0.4)["factor"] == 4
    assert [noise_sim.resolve_params("edge", s)["radius"] for s in (0, 0.5, 1)] == [0, 3, 6]
    assert noise_sim.resolve_params("random", 1.0)["p"] == 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_severity_maps_monotonically(kind):
    spec = noise_sim.get_kind(kind)
    values = [spec.from_severity(s / 20) for s in range(21)]
    for name in spec.defaults:
        seq = [v[name] for v in values]
        increasing, decreasing = seq == sorted(seq), seq == sorted(seq, reverse=True)
        assert increasing or decreasing, (name, seq)


# ---- the paper's three kinds, exactly ----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_ds_matches_pil_nearest(seed):
    rs = np.random.RandomState(seed)
    h, w = rs.randint(5, 90, size=2)
    factor = int(rs.randint(2, 9))
    x = rs.randint(0, 150, size=(h, w)).astype(np.uint8)
    small = Image.fromarray(x).resize((max(1, w // factor), max(1, h // factor)), Image.NEAREST)
    expected = np.asarray(small.resize((w, h), Image.NEAREST))
    got = noise_sim.corrupt(torch.from_numpy(x), "ds", factor=factor)
    assert np.array_equal(got.numpy(), expected)


@pytest.mark.parametrize("seed", range(6))
def test_ds_from_original_matches_pil_nearest(seed):
    """The paper's DS folder: the original-size map straight to the grid, then up to the evaluation size."""
    from noise_sim.paper import ds_from_original

    rs = np.random.RandomState(seed)
    h0, w0, h, w = rs.randint(5, 700, size=4)
    factor = int(rs.randint(1, 9))
    x = rs.randint(0, 151, size=(h0, w0)).astype(np.uint8)
    small = Image.fromarray(x).resize((max(1, w // factor), max(1, h // factor)), Image.NEAREST)
    expected = np.asarray(small.resize((w, h), Image.NEAREST))
    assert np.array_equal(ds_from_original(torch.from_numpy(x), factor=factor, size=(h, w)).numpy(), expected)


def test_ds_paper_setting_is_block_sampling():
    """256 -> 64 -> 256 with PIL NEAREST keeps pixel (4i + 2, 4j + 2) of every 4 x 4 block."""
    x = torch.randint(0, 151, (2, 256, 256), generator=gen())
    expected = x[:, 2::4, 2::4].repeat_interleave(4, 1).repeat_interleave(4, 2)
    assert torch.equal(noise_sim.corrupt(x, "ds"), expected)


def reference_edge(labels: np.ndarray, edges_of: np.ndarray, radius: int) -> np.ndarray:
    """The reference generator's per-pixel loop (SCDM image_process/edge.py), on one map."""
    h, w = edges_of.shape
    e = np.zeros((h, w), bool)
    e[:, 1:] |= edges_of[:, 1:] != edges_of[:, :-1]
    e[:, :-1] |= edges_of[:, 1:] != edges_of[:, :-1]
    e[1:, :] |= edges_of[1:, :] != edges_of[:-1, :]
    e[:-1, :] |= edges_of[1:, :] != edges_of[:-1, :]
    new = np.zeros((h, w), bool)
    for x in range(h):
        for y in range(w):
            if e[x, y]:
                for dx in range(-radius, radius + 1):
                    for dy in range(-(radius - abs(dx)), radius - abs(dx) + 1):
                        if 0 <= x + dx < h and 0 <= y + dy < w:
                            new[x + dx, y + dy] = True
    return np.where(new, 0, labels)


@pytest.mark.parametrize("radius", [0, 1, 2, 4])
def test_edge_matches_reference_loop(radius):
    x = scenes(1, 32, seed=radius)[0]
    inst = scenes(1, 32, seed=radius + 10)[0]
    got = noise_sim.corrupt(x, "edge", radius=radius)
    assert np.array_equal(got.numpy(), reference_edge(x.numpy(), x.numpy(), radius))
    got_inst = noise_sim.corrupt(x, "edge", radius=radius, instances=inst)
    assert np.array_equal(got_inst.numpy(), reference_edge(x.numpy(), inst.numpy(), radius))


def test_edge_radius_two_diamond_by_hand():
    """A one-pixel object: its edge is itself and its 4 neighbours; radius 2 grows that to |dy|+|dx| <= 3."""
    x = torch.full((15, 15), 5)
    x[7, 7] = 9
    out = noise_sim.corrupt(x, "edge", radius=2, unlabeled=0)
    yy, xx = torch.meshgrid(torch.arange(15), torch.arange(15), indexing="ij")
    ball = (yy - 7).abs() + (xx - 7).abs() <= 3
    assert torch.equal(out == 0, ball)
    assert torch.equal(out[~ball], x[~ball])
    # a straight boundary between columns 7 and 8: columns 5..10 are removed (2 + 2 * 2 px)
    x = torch.full((6, 16), 5)
    x[:, 8:] = 9
    removed = (noise_sim.corrupt(x, "edge", radius=2) == 0).all(0)
    assert removed.nonzero()[:, 0].tolist() == [5, 6, 7, 8, 9, 10]


def test_edge_uses_instances_when_given():
    x = torch.full((1, 12, 12), 2)  # one class ...
    inst = torch.zeros(1, 12, 12, dtype=torch.long)
    inst[:, :, 6:] = 1  # ... two instances
    assert torch.equal(noise_sim.corrupt(x, "edge"), x)
    out = noise_sim.corrupt(x, "edge", instances=inst)
    assert (out[0, :, 3:9] == 0).all() and (out[0, :, :3] == 2).all() and (out[0, :, 9:] == 2).all()


def test_random_is_one_uniform_draw_per_pixel():
    x = torch.full((2, 40, 50), 7)
    out = noise_sim.corrupt(x, "random", p=0.3, generator=gen(4))
    gens = rng.map_generators(gen(4), 2)
    expected = torch.stack([torch.rand(40, 50, generator=g) < 0.3 for g in gens])
    assert torch.equal(out == 0, expected)
    big = noise_sim.corrupt(torch.full((200, 200), 7), "random", p=0.1, generator=gen(1))
    assert abs(float((big == 0).double().mean()) - 0.1) < 0.01


def test_unlabeled_id_is_configurable():
    x = scenes(1)
    out = noise_sim.corrupt(x, "edge", unlabeled=255)
    changed = out != x
    assert changed.any() and (out[changed] == 255).all()


# ---- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels, kwargs, message",
    [
        (torch.zeros(8, 8), {}, "integer"),
        (torch.zeros(8, 8, dtype=torch.bool), {}, "integer"),
        (torch.full((8, 8), -1), {}, "non-negative"),
        (torch.zeros(1, 1, 8, 8, dtype=torch.long), {}, "shape"),
        (np.zeros((8, 8), np.int64), {}, "torch.Tensor"),
        (torch.full((8, 8), MAX_ID), {}, "below"),
        (torch.zeros(8, 8, dtype=torch.long), {"severity": 1.5}, "severity"),
        (torch.zeros(8, 8, dtype=torch.long), {"severity": -0.1}, "severity"),
        (torch.zeros(8, 8, dtype=torch.long), {"severity": math.nan}, "severity"),
        (torch.zeros(8, 8, dtype=torch.long), {"severity": 0.5, "radius": 2}, "not both"),
        (torch.zeros(8, 8, dtype=torch.long), {"sigma": 2}, "no parameter"),
        (torch.zeros(8, 8, dtype=torch.long), {"radius": -1}, "radius"),
        (torch.zeros(8, 8, dtype=torch.long), {"instances": torch.zeros(8, 9, dtype=torch.long)}, "must match"),
        (torch.zeros(8, 8, dtype=torch.long), {"instances": torch.zeros(8, 8)}, "integer"),
        (torch.zeros(8, 8, dtype=torch.long), {"unlabeled": -1}, "unlabeled"),
        (torch.zeros(8, 8, dtype=torch.uint8), {"unlabeled": 300}, "does not fit"),
    ],
)
def test_bad_input_raises_value_error(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        noise_sim.corrupt(labels, "edge", **kwargs)


def test_unknown_kind_and_bad_values():
    x = torch.zeros(8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="torch.Generator"):
        noise_sim.corrupt(x, "random", generator=0)
    with pytest.raises(ValueError, match="unknown kind 'blur'.*ds"):
        noise_sim.corrupt(x, "blur")
    with pytest.raises(ValueError, match="factor"):
        noise_sim.corrupt(x, "ds", factor=0)
    with pytest.raises(ValueError, match="p must"):
        noise_sim.corrupt(x, "random", p=1.5)
    with pytest.raises(ValueError, match="dataset"):
        noise_sim.corrupt(x, "confusion", severity=0.5, dataset="cityscapes")
    with pytest.raises(ValueError, match="fill"):
        noise_sim.corrupt(x, "missing", severity=0.5, fill="inpaint")


# ---- morphology building blocks -----------------------------------------------------------------------


def test_l1_distance_and_nearest_match_brute_force():
    g = gen(3)
    mask = torch.rand(2, 17, 23, generator=g) < 0.05
    mask[1] = False
    dist = morph.l1_distance(mask)
    dist2, nearest = morph.l1_nearest(mask)
    pts = np.argwhere(mask[0].numpy())
    yy, xx = np.mgrid[:17, :23]
    brute = np.min(np.abs(yy[..., None] - pts[:, 0]) + np.abs(xx[..., None] - pts[:, 1]), axis=-1)
    assert np.array_equal(dist[0].numpy(), brute) and np.array_equal(dist2[0].numpy(), brute)
    ny, nx = nearest[0].numpy() // 23, nearest[0].numpy() % 23
    assert mask[0].numpy()[ny, nx].all() and np.array_equal(np.abs(ny - yy) + np.abs(nx - xx), brute)
    assert (dist[1] == torch.iinfo(dist.dtype).max).all()  # no True pixel in map 1


def test_connected_components_match_scipy():
    import scipy.ndimage as scipy_ndimage
    x = torch.randint(0, 3, (2, 30, 30), generator=gen(8))
    cc = morph.connected_components(x)
    comp, area = cc.pixel_components(), cc.areas()[cc.run]
    for b in range(2):
        ref, n = np.zeros((30, 30), int), 0
        for k in range(3):
            lab, nk = scipy_ndimage.label(x[b].numpy() == k)
            ref[lab > 0] = lab[lab > 0] + n
            n += nk
        pairs = set(zip(comp[b].flatten().tolist(), ref.flatten().tolist()))
        assert len(pairs) == n == len(set(comp[b].flatten().tolist()))
        assert np.array_equal(area[b].numpy(), np.bincount(ref.ravel())[ref])


def test_step_distance_and_spread_are_octagonal():
    m = torch.zeros(1, 9, 9, dtype=torch.bool)
    m[0, 4, 4] = True
    d = morph.step_distance(m, 5)[0]
    assert d[4, 4] == 0 and d[4, 6] == 2 and d[6, 5] == 2 and d[6, 6] == 3 and d[4, 8] == 4 and d[0, 0] == 5
    grown = morph.spread_max(m.to(torch.uint8), torch.full((1, 9, 9), 2, dtype=torch.uint8))[0].bool()
    assert torch.equal(grown, d <= 2)
