"""noise_sim human-error kinds: what each one may and may not change, on hand-made maps."""

from __future__ import annotations

import pytest
import torch

import noise_sim
from noise_sim import morph
from noise_sim.confusion import ADE20K, EMBEDDED, TABLES
from conftest import gen  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_thread")  # small maps: one torch thread is fastest


def halves(left: int, right: int, size: int = 24) -> torch.Tensor:
    """(1, size, size) map: ``left`` in the left half, ``right`` in the right half."""
    x = torch.full((1, size, size), left)
    x[:, :, size // 2:] = right
    return x


def blobs(size: int = 40) -> torch.Tensor:
    """(1, size, size): background 5, a 3x3 object 9 and a 12x12 object 9."""
    x = torch.full((1, size, size), 5)
    x[:, 4:7, 4:7] = 9
    x[:, 20:32, 20:32] = 9
    return x


def ids(x: torch.Tensor) -> set[int]:
    return set(x.unique().tolist())


# ---- confusion ----------------------------------------------------------------------------------------


def test_confusion_tables_are_symmetric_and_embedded_uses_world_ids():
    for table in TABLES.values():
        partners = table.partners()
        assert all(a in partners[b] for a, ps in partners.items() for b in ps)
    world = {2, 3, 5, 7, 10, 12, 17, 22, 30, 35, 47, 67}
    assert set(EMBEDDED.partners()) <= world
    assert {30} <= set(ADE20K.partners()[10]) and 12 in ADE20K.partners()[7] and 26 in ADE20K.partners()[2]
    assert 22 in ADE20K.partners()[27] and 18 in ADE20K.partners()[5] and 69 in ADE20K.partners()[17]


def test_confusion_uses_the_table_and_relabels_whole_regions():
    x = halves(10, 7)  # grass | road
    for seed in range(5):
        out = noise_sim.corrupt(x, "confusion", p=1.0, dataset="embedded", generator=gen(seed))
        left, right = out[0, :, :12], out[0, :, 12:]
        assert ids(left) <= {30, 67} and len(ids(left)) == 1  # grass -> field or flower, the whole region
        assert ids(right) == {12}  # road -> sidewalk


def test_confusion_without_table_picks_another_present_class():
    out = noise_sim.corrupt(halves(3, 17), "confusion", p=1.0, generator=gen())
    assert torch.equal(out, halves(17, 3))
    single = torch.full((1, 8, 8), 3)
    assert torch.equal(noise_sim.corrupt(single, "confusion", p=1.0, generator=gen()), single)
    unlabeled = halves(0, 3)  # unlabeled regions are never relabelled
    assert (noise_sim.corrupt(unlabeled, "confusion", p=1.0, generator=gen())[0, :, :12] == 0).all()


def test_confusion_treats_instances_as_separate_regions():
    x = halves(3, 17)
    inst = torch.zeros_like(x)
    inst[:, 12:, 12:] = 1  # the right half (17) is two touching instances
    split_with, split_without = False, False
    for seed in range(30):
        with_inst = noise_sim.corrupt(x, "confusion", p=0.5, generator=gen(seed), instances=inst)[0, :, 12:]
        without = noise_sim.corrupt(x, "confusion", p=0.5, generator=gen(seed))[0, :, 12:]
        split_with |= len(ids(with_inst)) > 1
        split_without |= len(ids(without)) > 1
    assert split_with and not split_without


# ---- missing ------------------------------------------------------------------------------------------


def test_missing_drops_only_small_regions():
    x = blobs()
    out = noise_sim.corrupt(x, "missing", max_area=20 / 1600)  # 9 px < 20 px <= 144 px
    assert (out[0, 4:7, 4:7] == 0).all() and torch.equal(out[0, 20:32, 20:32], x[0, 20:32, 20:32])
    assert int((out != x).sum()) == 9
    surround = noise_sim.corrupt(x, "missing", max_area=20 / 1600, fill="surround")
    assert (surround[0, 4:7, 4:7] == 5).all() and int((surround != x).sum()) == 9


def test_missing_respects_instances():
    x = torch.full((1, 30, 30), 5)
    inst = torch.zeros_like(x)
    inst[:, 10:13, 10:13] = 7  # a small object of the same class as its surround
    assert torch.equal(noise_sim.corrupt(x, "missing", max_area=0.05), x)
    out = noise_sim.corrupt(x, "missing", max_area=0.05, instances=inst)
    assert (out[0, 10:13, 10:13] == 0).all() and int((out != x).sum()) == 9


# ---- painting -----------------------------------------------------------------------------------------


def test_overpaint_only_spreads_present_classes_near_boundaries():
    x = halves(3, 17, 40)
    for seed in range(4):
        out = noise_sim.corrupt(x, "overpaint", radius=6, fraction=1.0, generator=gen(seed))
        changed = out != x
        assert changed.any() and ids(out) <= {3, 17}
        cols = changed[0].nonzero()[:, 1]
        assert int(cols.min()) >= 20 - 6 and int(cols.max()) < 20 + 6  # within the radius of the boundary
    assert torch.equal(noise_sim.corrupt(x, "overpaint", radius=6, fraction=0.0, generator=gen()), x)


def test_underpaint_only_writes_unlabeled_near_boundaries():
    x = halves(3, 17, 40)
    out = noise_sim.corrupt(x, "underpaint", radius=5, fraction=1.0, generator=gen(1))
    changed = out != x
    assert changed.any() and (out[changed] == 0).all()
    cols = changed[0].nonzero()[:, 1]
    assert int(cols.min()) >= 20 - 1 - 4 and int(cols.max()) <= 20 + 4  # at most 5 rows on each side
    assert torch.equal(noise_sim.corrupt(x, "underpaint", radius=5, fraction=0.0, generator=gen()), x)


def test_underpaint_uses_instance_boundaries():
    x = torch.full((1, 24, 24), 3)
    inst = torch.zeros_like(x)
    inst[:, :, 12:] = 1
    assert torch.equal(noise_sim.corrupt(x, "underpaint", radius=4, fraction=1.0, generator=gen()), x)
    out = noise_sim.corrupt(x, "underpaint", radius=4, fraction=1.0, generator=gen(), instances=inst)
    assert (out != x).any()


def test_scribble_keeps_a_stroke_in_every_region():
    x = torch.stack([halves(3, 17, 40)[0], blobs()[0]])
    out = noise_sim.corrupt(x, "scribble", erase=1.0, generator=gen())
    changed = out != x
    assert (out[changed] == 0).all() and changed.float().mean() > 0.5
    cc = morph.connected_components(x)
    comp = cc.pixel_components()
    for name in cc.root.unique():
        assert (out[comp == name] != 0).any()  # every region keeps part of its ridge


# ---- geometry -----------------------------------------------------------------------------------------


def test_shaky_moves_labels_only_near_boundaries():
    x = halves(3, 17, 48)
    out = noise_sim.corrupt(x, "shaky", amplitude=4.0, generator=gen(2))
    changed = out != x
    assert changed.any() and ids(out) <= {3, 17}
    cols = changed[0].nonzero()[:, 1]
    assert int(cols.min()) >= 24 - 4 and int(cols.max()) < 24 + 4
    assert torch.equal(noise_sim.corrupt(x, "shaky", amplitude=0.0, generator=gen()), x)


def test_polygon_keeps_ids_and_spacing_one_is_identity():
    x = blobs(48)
    assert torch.equal(noise_sim.corrupt(x, "polygon", spacing=1, generator=gen()), x)
    out = noise_sim.corrupt(x, "polygon", spacing=6, generator=gen(1))
    assert ids(out) <= ids(x) and (out != x).any()
    # far from any boundary nothing changes
    assert (out[0, :, 40:] == 5).all()


# ---- mixture ------------------------------------------------------------------------------------------


def test_mixture_only_uses_known_ids_and_respects_the_table():
    x = halves(10, 7, 40)
    allowed = {0, 10, 7} | set(EMBEDDED.partners()[10]) | set(EMBEDDED.partners()[7])
    for seed in range(6):
        out = noise_sim.corrupt(x, "mixture", severity=1.0, dataset="embedded", generator=gen(seed))
        assert ids(out) <= allowed
