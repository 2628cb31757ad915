"""Tests for the procedural world: determinism, splits, class/instance invariants, rendering, cache."""

from __future__ import annotations

import numpy as np
import pytest

from scdm.world import (
    CLASS_IDS, CLASS_NAMES, CLASSES, PALETTE, THING_IDS, UNLABELED, WorldConfig, label_to_color, load_or_make_split,
    make_scene, make_split, render,
)
from scdm.labels import UNKNOWN_COLOR
from scdm.world.dataset import cache_path
from scdm.world.layout import remove_slivers


@pytest.fixture(scope="module")
def batch() -> dict[str, np.ndarray]:
    """200 train scenes at the default size, shared by the statistical tests."""
    return make_split("train", 200)


def test_class_table_matches_ade20k() -> None:
    assert CLASS_IDS == (2, 3, 5, 7, 10, 12, 17, 22, 30, 35, 47, 67)
    assert CLASS_NAMES == ("building", "sky", "tree", "road", "grass", "sidewalk", "mountain", "water", "field",
                           "rock", "sand", "flower")
    assert [c.id for c in CLASSES] == sorted(CLASS_IDS)
    assert UNLABELED == 0 and PALETTE[0] == (0, 0, 0)
    assert PALETTE[3] == (6, 230, 230) and PALETTE[5] == (4, 200, 3) and PALETTE[67] == (255, 0, 0)
    assert set(PALETTE) == {0, *CLASS_IDS}


def test_determinism_and_index_dependence() -> None:
    a, b, c = make_scene(7), make_scene(7), make_scene(8)
    for x, y in ((a.label, b.label), (a.instances, b.instances), (a.image, b.image)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(make_scene(7, config=WorldConfig(seed=1)).image, a.image)


def test_splits_differ() -> None:
    train, test = make_split("train", 20), make_split("test", 20)
    for k in range(20):
        assert not np.array_equal(train["images"][k], test["images"][k])
    # start offsets index the same stream
    np.testing.assert_array_equal(make_split("test", 3, start=5)["labels"], make_split("test", 8)["labels"][5:])


def test_shapes_and_dtypes(batch: dict[str, np.ndarray]) -> None:
    assert batch["labels"].shape == (200, 64, 64) and batch["labels"].dtype == np.uint8
    assert batch["instances"].shape == (200, 64, 64) and batch["instances"].dtype == np.int32
    assert batch["images"].shape == (200, 64, 64, 3) and batch["images"].dtype == np.uint8
    scene = make_scene(0)
    assert scene.label.shape == (64, 64) and scene.image.shape == (64, 64, 3)


def test_only_world_classes_and_all_appear(batch: dict[str, np.ndarray]) -> None:
    ids = set(np.unique(batch["labels"]).tolist())
    assert ids <= set(CLASS_IDS)
    assert ids == set(CLASS_IDS), f"missing classes {set(CLASS_IDS) - ids}"
    presence = np.stack([np.isin(CLASS_IDS, np.unique(x)) for x in batch["labels"]]).mean(0)
    assert presence.min() > 0.2, dict(zip(CLASS_NAMES, presence.round(2)))
    assert (batch["labels"] == 3).any(axis=(1, 2)).all(), "every scene has sky"


def test_instances_are_objects(batch: dict[str, np.ndarray]) -> None:
    for label, inst in zip(batch["labels"], batch["instances"]):
        assert inst.min() >= 0
        assert np.isin(label[inst > 0], THING_IDS).all()
        things = np.isin(label, THING_IDS)
        assert (inst[things] > 0).all(), "every tree/building/rock pixel belongs to an instance"
        n = int(inst.max())
        assert set(np.unique(inst).tolist()) == set(range(n + 1)), "ids are 1..N without gaps"
        for i in range(1, n + 1):
            assert np.unique(label[inst == i]).size == 1, "an instance lies within one class"


def test_hardly_any_one_pixel_slivers(batch: dict[str, np.ndarray]) -> None:
    # Runs of one pixel (per row or column) only survive where thin diagonal strips meet; they must be rare.
    lone = 0
    for label in batch["labels"]:
        for k in (label, label.T):
            mid = k[:, 1:-1]
            lone += ((mid != k[:, :-2]) & (mid != k[:, 2:])).sum()
            lone += (k[:, 0] != k[:, 1]).sum() + (k[:, -1] != k[:, -2]).sum()
    assert lone / batch["labels"].size < 2e-4


def test_remove_slivers_keeps_pairs() -> None:
    label = np.full((6, 6), 3, np.uint8)
    inst = np.zeros((6, 6), np.int32)
    label[:, 2], inst[:, 2] = 5, 1  # a 1-pixel-wide tree trunk column
    remove_slivers(label, inst)
    assert (label == 3).all() and (inst == 0).all()


def test_same_label_many_appearances() -> None:
    scene = make_scene(3)
    a = render(scene.label, scene.instances, np.random.default_rng(0))
    b = render(scene.label, scene.instances, np.random.default_rng(1))
    c = render(scene.label, scene.instances, np.random.default_rng(0))
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, c)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 3.0


def test_classes_are_visually_distinct(batch: dict[str, np.ndarray]) -> None:
    # Mean colours per class differ: a nearest-class-mean classifier beats chance by a wide margin.
    labels, images = batch["labels"].ravel(), batch["images"].reshape(-1, 3).astype(np.float64)
    means = np.stack([images[labels == c].mean(0) for c in CLASS_IDS])
    sample = np.random.default_rng(0).choice(labels.size, 20000, replace=False)
    pred = np.asarray(CLASS_IDS)[np.argmin(((images[sample, None] - means[None]) ** 2).sum(-1), 1)]
    assert (pred == labels[sample]).mean() > 0.3


@pytest.mark.parametrize("size", [32, 128])
def test_other_sizes(size: int) -> None:
    scene = make_scene(1, "test", WorldConfig(size=size))
    assert scene.label.shape == (size, size) and scene.image.shape == (size, size, 3)
    assert set(np.unique(scene.label).tolist()) <= set(CLASS_IDS)


def test_label_to_color() -> None:
    label = np.array([[3, 5], [0, 200]], np.uint8)
    rgb = label_to_color(label)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == PALETTE[3] and tuple(rgb[0, 1]) == PALETTE[5]
    assert tuple(rgb[1, 0]) == (0, 0, 0) and tuple(rgb[1, 1]) == UNKNOWN_COLOR  # unlabeled black, 200 unknown


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        make_scene(0, "val")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="index"):
        make_scene(-1)
    with pytest.raises(ValueError, match="size"):
        make_scene(0, config=WorldConfig(size=4))


def test_cache_roundtrip_and_corruption(tmp_path) -> None:
    config = WorldConfig(size=32)
    data = load_or_make_split("test", 4, config, cache_dir=tmp_path)
    path = cache_path("test", 4, config, tmp_path)
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    again = load_or_make_split("test", 4, config, cache_dir=tmp_path)
    for k in ("labels", "instances", "images"):
        np.testing.assert_array_equal(data[k], again[k])
    np.testing.assert_array_equal(data["images"], make_split("test", 4, config)["images"])
    path.write_bytes(b"not an npz file")
    fixed = load_or_make_split("test", 4, config, cache_dir=tmp_path)
    np.testing.assert_array_equal(fixed["labels"], data["labels"])
    with np.load(path) as f:
        np.testing.assert_array_equal(f["images"], data["images"])
    assert cache_path("train", 4, config, tmp_path) != path
    assert cache_path("test", 4, WorldConfig(size=32, seed=1), tmp_path) != path


def test_cache_dir_from_env(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SCDM_CACHE", str(tmp_path))
    assert cache_path("train", 2).parent == tmp_path / "world"  # one cache root: $SCDM_CACHE/world, $SCDM_CACHE/bench


def test_cli_preview_writes_a_grid_and_bad_input_is_one_line(tmp_path, capsys):
    from scdm.world.__main__ import main

    out = tmp_path / "p.png"
    assert main(["preview", "--n", "2", "--size", "32", "--out", str(out)]) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.size[0] > 32 and im.mode == "RGB"
    assert main(["preview", "--size", "7", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "WorldConfig.size" in err[0]
    assert main(["stats", "--n", "0"]) == 2
