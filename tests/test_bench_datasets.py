"""bench datasets and config: layouts, resize protocol, flat-paint colours, and clear errors on bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from bench.config import (BenchConfig, CorruptionSpec, DatasetKind, DatasetSpec, Metric, ModelKind, ModelSpec,
                          Mode, Sampler, SamplingSettings, config_to_json, load_config, validate)
from bench.datasets import flat_paint, list_pairs, load_eval, load_train, mean_colours


def make_ade20k(root, n_val: int = 3, n_train: int = 2, size=(48, 40), seed: int = 0):
    """A fake ADEChallengeData2016 folder: JPEG images, PNG annotations with raw ids 0..150."""
    rng = np.random.default_rng(seed)
    for split, n in (("validation", n_val), ("training", n_train)):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            name = f"ADE_{split[:3]}_{i:08d}"
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(root / "images" / split / f"{name}.jpg")
            label = np.zeros((size[1], size[0]), np.uint8)
            label[: size[1] // 2] = 3  # sky
            label[size[1] // 2:, : size[0] // 2] = 5  # tree
            label[size[1] // 2:, size[0] // 2:] = rng.integers(1, 151)
            label[0, 0] = 0  # unlabeled
            Image.fromarray(label).save(root / "annotations" / split / f"{name}.png")
    return root


def test_ade20k_layout_and_resize_protocol(tmp_path) -> None:
    root = make_ade20k(tmp_path / "ade")
    spec = DatasetSpec(kind=DatasetKind.ADE20K, root=str(root), resolution=32)
    split = load_eval(spec)
    assert split.images.shape == (3, 32, 32, 3) and split.labels.shape == (3, 32, 32) and split.instances is None
    assert split.names[0] == "ADE_val_00000000"
    assert set(np.unique(split.labels[0])) <= {0, 3, 5} | set(range(1, 151))  # nearest: no new ids
    assert len(load_eval(spec, limit=2)) == 2
    train = load_train(spec, 5)
    assert len(train) == 2 and train.names[0].startswith("ADE_tra")


def test_cityscapes_and_coco_layouts(tmp_path) -> None:
    city = tmp_path / "city"
    for sub in ("leftImg8bit/val/aachen", "gtFine/val/aachen"):
        (city / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((32, 64, 3), np.uint8)).save(city / "leftImg8bit/val/aachen/a_000000_leftImg8bit.png")
    Image.fromarray(np.full((32, 64), 7, np.uint8)).save(city / "gtFine/val/aachen/a_000000_gtFine_labelIds.png")
    Image.fromarray(np.full((32, 64), 26001, np.int32)).save(city / "gtFine/val/aachen/a_000000_gtFine_instanceIds.png")
    split = load_eval(DatasetSpec(kind=DatasetKind.CITYSCAPES, root=str(city), resolution=16))
    assert split.labels.shape == (1, 16, 32) and split.instances is not None and split.instances.max() == 26001

    coco = tmp_path / "coco"
    for sub in ("val_img", "val_label", "val_inst"):
        (coco / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(coco / "val_img" / "x.jpg")
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(coco / "val_label" / "x.png")
    Image.fromarray(np.ones((20, 20), np.uint8)).save(coco / "val_inst" / "x.png")
    split = load_eval(DatasetSpec(kind=DatasetKind.COCO_STUFF, root=str(coco), resolution=16))
    assert split.labels.max() == 255 and split.instances is not None


def test_bad_dataset_input_names_the_file(tmp_path) -> None:
    spec = DatasetSpec(kind=DatasetKind.ADE20K, root=str(tmp_path / "missing"), resolution=32)
    with pytest.raises(ValueError, match="does not exist"):
        load_eval(spec)
    root = make_ade20k(tmp_path / "ade")
    spec = DatasetSpec(kind=DatasetKind.ADE20K, root=str(root), resolution=32)
    extra = root / "annotations" / "validation" / "ADE_val_00000099.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(extra)
    with pytest.raises(ValueError, match="ADE_val_00000099.png"):
        load_eval(spec)
    extra.unlink()
    bad = root / "annotations" / "validation" / "ADE_val_00000001.png"
    Image.fromarray(np.full((40, 48), 200, np.uint8)).save(bad)
    with pytest.raises(ValueError, match=r"ADE_val_00000001.png: label ids \[200\] are not classes of the dataset "
                                         r"encoding \(200: 1920 px\)"):
        load_eval(spec)
    Image.fromarray(np.zeros((40, 48), np.uint8)).save(bad)
    (root / "images" / "validation" / "ADE_val_00000002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cannot read .*ADE_val_00000002.jpg"):
        load_eval(spec)
    (root / "annotations" / "validation" / "ADE_val_00000002.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="must be PNG"):
        list_pairs(spec)


def test_flat_paint_uses_mean_training_colours() -> None:
    from bench.datasets import Split

    labels = np.array([[[1, 1], [2, 2]]], np.int32)
    images = np.array([[[[10, 0, 0], [30, 0, 0]], [[0, 100, 0], [0, 200, 0]]]], np.uint8)
    colours = mean_colours(Split(images, labels, None, ("a",)))
    assert colours[1].tolist() == [20, 0, 0] and colours[2].tolist() == [0, 150, 0]
    painted = flat_paint(np.array([[[2, 0], [1, 7]]]), colours)
    assert painted[0, 0, 0].tolist() == [0, 150, 0] and painted[0, 1, 1].tolist() == [0, 0, 0]  # unseen ids black


def test_config_roundtrip_and_validation(tmp_path) -> None:
    cfg = BenchConfig(models=(ModelSpec("a", "embedded-scdm"), ModelSpec("real", kind=ModelKind.REAL)),
                      corruptions=(CorruptionSpec("ds", (0.4,)),), metrics=(Metric.MIOU,), seeds=(0, 1))
    path = tmp_path / "c.json"
    path.write_text(config_to_json(cfg))
    assert load_config(path) == cfg
    toml = tmp_path / "c.toml"
    toml.write_text('seeds = [3]\nlimit = 5\n[dataset]\nkind = "ade20k"\nroot = "x"\n'
                    '[[corruptions]]\nkind = "edge"\nseverities = [0.3]\n')
    t = load_config(toml)
    assert t.dataset.kind == DatasetKind.ADE20K and t.corruptions == (CorruptionSpec("edge", (0.3,)),) and t.seeds == (3,)
    for bad, match in ((BenchConfig(corruptions=(CorruptionSpec("blur", (0.5,)),)), "unknown corruption 'blur'"),
                       (BenchConfig(corruptions=(CorruptionSpec("ds", (0.0,)),)), r"\(0, 1\]"),
                       (BenchConfig(models=(ModelSpec("x"),)), "needs a `source`"),
                       (BenchConfig(dataset=DatasetSpec(kind=DatasetKind.ADE20K)), "needs `root`"),
                       (BenchConfig(seeds=(0, 0)), "distinct"),
                       (BenchConfig(samplers=(SamplingSettings(Sampler.ANCESTRAL, eta=1.0),)), "only applies to the ddim"),
                       (BenchConfig(samplers=(SamplingSettings(Sampler.DDIM, eta=1.5),)), r"samplers\[0\]\.eta must be in"),
                       (BenchConfig(samplers=()), "empty \\[\\[samplers\\]\\] table is the card's sampler"),
                       (BenchConfig(models=(ModelSpec("a", "embedded-scdm", mode=Mode.SDM),),
                                    samplers=(SamplingSettings(label_diffusion=True),)), "mode 'sdm' but samplers")):
        with pytest.raises(ValueError, match=match):
            validate(bad)
    path.write_text(json.dumps({"metrics": ["fid", "psnr"]}))
    with pytest.raises(ValueError, match="'psnr' is not one of"):
        load_config(path)
    path.write_text(json.dumps({"modles": []}))
    with pytest.raises(ValueError, match="unknown fields"):
        load_config(path)


def test_folder_layout_with_instances(tmp_path) -> None:
    for sub in ("images", "labels", "instances", "train/images", "train/labels"):
        (tmp_path / sub).mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((24, 24, 3), 40 * i, np.uint8)).save(tmp_path / "images" / f"s{i}.png")
        Image.fromarray(np.full((24, 24), 7 + i, np.uint8)).save(tmp_path / "labels" / f"s{i}.png")
        Image.fromarray(np.eye(24, dtype=np.uint8)).save(tmp_path / "instances" / f"s{i}.png")
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(tmp_path / "train/images/t.jpg")
    Image.fromarray(np.full((24, 24), 7, np.uint8)).save(tmp_path / "train/labels/t.png")
    spec = DatasetSpec(kind=DatasetKind.FOLDER, root=str(tmp_path), resolution=16)
    split = load_eval(spec)
    assert split.names == ("s0", "s1") and split.labels[1].max() == 8 and split.instances.shape == (2, 16, 16)
    assert len(load_train(spec, 3)) == 1
    (tmp_path / "instances" / "s1.png").unlink()
    with pytest.raises(ValueError, match="without an instance map"):
        load_eval(spec)


def test_maps_are_read_as_the_reference_reads_them(tmp_path) -> None:
    """Labels smaller than their photo (CelebAMask-HQ), 8-bit maps, `.convert("L")` instances, clear errors."""
    root = tmp_path / "celeba"
    for sub in ("test/images", "test/labels"):
        (root / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "test/images/0.jpg")
    label = np.zeros((32, 32), np.uint8)
    label[:, 16:] = 18
    Image.fromarray(label).save(root / "test/labels/0.png")
    spec = DatasetSpec(kind=DatasetKind.CELEBAMASK_HQ, root=str(root), resolution=16)
    split = load_eval(spec)
    assert split.labels.shape == (1, 16, 16) and set(np.unique(split.labels[0])) == {0, 18}
    assert split.originals is not None and split.originals[0].shape == (32, 32)  # DS starts here
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(root / "test/labels/0.png")
    with pytest.raises(ValueError, match="aspect ratio"):
        load_eval(spec)
    Image.fromarray(np.full((32, 32), 300, np.uint16)).save(root / "test/labels/0.png")
    with pytest.raises(ValueError, match="has id 300; this dataset's maps are 8 bit"):
        load_eval(spec)  # the reference would clip it to 255

    coco = tmp_path / "coco"
    for sub in ("val_img", "val_label", "val_inst"):
        (coco / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(coco / "val_img" / "x.jpg")
    Image.fromarray(np.full((16, 16), 7, np.uint8)).save(coco / "val_label" / "x.png")
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, 8:] = (10, 200, 30)
    Image.fromarray(rgb).save(coco / "val_inst" / "x.png")
    split = load_eval(DatasetSpec(kind=DatasetKind.COCO_STUFF, root=str(coco), resolution=16))
    assert np.array_equal(split.instances[0], np.asarray(Image.fromarray(rgb).convert("L")))  # luma, as the reference

    folder = tmp_path / "folder"
    for sub in ("images", "labels", "instances"):
        (folder / sub).mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(folder / "images" / "x.png")
    Image.fromarray(np.full((16, 16), 300, np.uint16)).save(folder / "labels" / "x.png")
    Image.fromarray(rgb).save(folder / "instances" / "x.png")
    split = load_eval(DatasetSpec(kind=DatasetKind.FOLDER, root=str(folder), resolution=16))
    assert split.labels.max() == 300 and split.instances.max() == 10 * 65536 + 200 * 256 + 30  # no reference: wide ids
