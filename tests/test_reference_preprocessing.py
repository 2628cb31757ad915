"""Bit-exact parity of the bench's data protocol with the official SCDM evaluation loader (docs/method.md §6-7).

`tests/fixtures/reference/preprocessing.json` holds the sha256 of what the official code makes from the
inputs built by `make_inputs` below (`python tools/reference_preprocessing_fixtures.py <checkout>` runs
`guided_diffusion/image_datasets.py`'s `resize_arr` and `image_process/downsample.py`'s `resize` on them):
the photo at 256 px (BOX halvings, one BICUBIC), label and instance maps read with `.convert("L")` and
resized NEAREST from their own size, and the paper's DS map (original size -> 64 x 64 -> 256 x 256). Here the
same inputs go through the bench's folder layouts (`load_eval`) and its corruption bank (`LabelBank`); every
array must have the same digest. The reference outputs ride along (PNG, base64) so a failure can say how many
pixels differ.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.config import DatasetKind, DatasetSpec
from bench.datasets import load_eval, unlabeled_id
from bench.sampling import LabelBank
from bench.store import Condition

FIXTURE = Path(__file__).parent / "fixtures" / "reference" / "preprocessing.json"
RESOLUTION = 256
DS_SEVERITY = 0.4  # noise_sim: factor round(2 ** (5 * 0.4)) = 4, the paper's DS


# ---------------------------------------------------------------------------------------------- inputs
# Closed-form integer formulas (no RNG, no floating point), so the generator and this test build the same
# bytes. Sizes are the datasets' own: ADE20K 683 x 512 (and a large 2100 x 1577 photo), CelebAMask-HQ 1024 x
# 1024 photos with 512 x 512 labels, COCO-Stuff 640 x 480 with an instance map, Cityscapes 2048 x 1024 (aspect
# kept; its 16-bit instance maps are read whole by the bench, see bench.datasets.PROTOCOLS, so not compared).

def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w]
    return x.astype(np.int64), y.astype(np.int64)


def photo(w: int, h: int) -> np.ndarray:
    """(h, w, 3) uint8: 20 rectangles of linear gradients with sharp borders, one of them a 1-pixel checker."""
    x, y = _grid(w, h)
    block = x * 5 // w + (y * 4 // h) * 5
    r = (x * 255 // (w - 1) + block * 37) % 256
    g = (y * 255 // (h - 1) + block * 53) % 256
    b = ((x + y) * 255 // (w + h - 2) + block * 91) % 256
    rgb = np.stack([r, g, b], -1)
    rgb[block == 7] = ((x + y) % 2 * 200 + 20)[block == 7, None]  # what the BOX halving averages
    return rgb.astype(np.uint8)


def label_map(w: int, h: int, n_ids: int, extra: tuple[int, ...] = ()) -> np.ndarray:
    """(h, w) uint8 ids 0..n_ids-1 (then `extra` ids): blocks, hyperbolic and circular borders, thin slivers."""
    x, y = _grid(w, h)
    v = x // 29 + (y // 31) * 7 + (x * y) // 4093 + ((x - w // 2) ** 2 + (y - h // 3) ** 2) // 2311
    ids = np.concatenate([np.arange(n_ids), np.asarray(extra, np.int64)])
    return ids[v % len(ids)].astype(np.uint8)


def instance_map(w: int, h: int) -> np.ndarray:
    """(h, w) uint8 instance ids 0..40: rectangles of objects on a 0 background."""
    x, y = _grid(w, h)
    inside = ((x // 37) % 3 != 0) & ((y // 41) % 2 == 0)
    return np.where(inside, 1 + (x // 37 + 17 * (y // 41)) % 40, 0).astype(np.uint8)


def make_inputs() -> dict[str, dict[str, np.ndarray]]:
    """Every case's input arrays: photo (H, W, 3), label (H', W') and optionally instance maps."""
    return {
        "ade20k": {"photo": photo(683, 512), "label": label_map(683, 512, 151)},  # raw 0 = unlabeled
        "ade20k_large": {"photo": photo(2100, 1577), "label": label_map(2100, 1577, 151)},
        "celebamask_hq": {"photo": photo(1024, 1024), "label": label_map(512, 512, 19)},
        "coco_stuff": {"photo": photo(640, 480), "label": label_map(640, 480, 182, (255,)),
                       "instance": instance_map(640, 480)},
        "cityscapes": {"photo": photo(2048, 1024), "label": label_map(2048, 1024, 34)},
        # keep_aspect at an odd size: the scale is taken after the BOX halving (900 x 601 -> 384 x 256, not 383)
        "cityscapes_odd": {"photo": photo(900, 601), "label": label_map(900, 601, 34)},
    }


CASE_KINDS = {"ade20k": DatasetKind.ADE20K, "ade20k_large": DatasetKind.ADE20K,
              "celebamask_hq": DatasetKind.CELEBAMASK_HQ, "coco_stuff": DatasetKind.COCO_STUFF,
              "cityscapes": DatasetKind.CITYSCAPES, "cityscapes_odd": DatasetKind.CITYSCAPES}


def write_layout(case: str, arrays: dict[str, np.ndarray], root: Path) -> None:
    """The case's files in its dataset's folder layout (photos as PNG: the same bytes for every decoder)."""
    kind = CASE_KINDS[case]
    if kind == DatasetKind.ADE20K:
        dirs, names = (root / "images/validation", root / "annotations/validation", None), ("x.png",) * 2
    elif kind == DatasetKind.CELEBAMASK_HQ:
        dirs, names = (root / "test/images", root / "test/labels", None), ("x.png",) * 2
    elif kind == DatasetKind.COCO_STUFF:
        dirs, names = (root / "val_img", root / "val_label", root / "val_inst"), ("x.png",) * 3
    else:
        city = root / "leftImg8bit/val/a", root / "gtFine/val/a", root / "gtFine/val/a"
        dirs, names = city, ("a_0_leftImg8bit.png", "a_0_gtFine_labelIds.png", "a_0_gtFine_instanceIds.png")
        arrays = {**arrays, "instance": arrays["label"]}  # the layout needs one; not part of the parity
    for folder, name, key in zip(dirs, names, ("photo", "label", "instance")):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arrays[key]).save(folder / name)


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def fixture() -> dict:
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def inputs() -> dict[str, dict[str, np.ndarray]]:
    return make_inputs()


def _expect_equal(got: np.ndarray, ref: dict, what: str) -> None:
    got = np.ascontiguousarray(got.astype(np.uint8))
    assert list(got.shape) == ref["shape"], f"{what}: shape {got.shape} vs the reference's {ref['shape']}"
    if sha256(got) != ref["sha256"]:
        want = np.asarray(Image.open(io.BytesIO(base64.b64decode(ref["png"]))))
        px = (got != want).reshape(got.shape[0], got.shape[1], -1).any(-1)
        pytest.fail(f"{what}: {int(px.sum())} of {px.size} pixels differ from the reference "
                    f"(max abs diff {int(np.abs(got.astype(int) - want).max())})")


def test_inputs_are_the_generators(fixture: dict, inputs: dict) -> None:
    for case, arrays in inputs.items():
        for key, arr in arrays.items():
            assert sha256(arr) == fixture["cases"][case]["inputs"][key], f"{case}/{key}: the formulas changed"


@pytest.mark.parametrize("case", list(CASE_KINDS))
def test_bench_reads_files_as_the_reference_loader(case: str, fixture: dict, inputs: dict, tmp_path: Path) -> None:
    ref = fixture["cases"][case]["outputs"]
    write_layout(case, inputs[case], tmp_path)
    kind = CASE_KINDS[case]
    split = load_eval(DatasetSpec(kind=kind, root=str(tmp_path), resolution=RESOLUTION))
    _expect_equal(split.images[0], ref["image"], f"{case} image")
    _expect_equal(split.labels[0], ref["label"], f"{case} label")
    if "instance" in ref:
        # CelebAMask-HQ: the reference's instance maps are its label files; the bench takes edges from labels
        inst = split.instances[0] if split.instances is not None else split.labels[0]
        _expect_equal(inst, ref["instance"], f"{case} instance")
    if "ds" in ref:
        bank = LabelBank(split, unlabeled_id(kind))
        _expect_equal(bank.get(Condition("ds", DS_SEVERITY, 0))[0], ref["ds"], f"{case} DS")


def test_ds_from_the_resized_label_would_differ(fixture: dict, inputs: dict, tmp_path: Path) -> None:
    """Why DS starts from the original: 256 -> 64 -> 256 samples the grid at another phase (docs/method.md §6)."""
    import torch

    import noise_sim

    write_layout("ade20k", inputs["ade20k"], tmp_path)
    split = load_eval(DatasetSpec(kind=DatasetKind.ADE20K, root=str(tmp_path), resolution=RESOLUTION))
    resized = noise_sim.corrupt(torch.from_numpy(split.labels[0]), "ds", factor=4).numpy()
    assert sha256(resized.astype(np.uint8)) != fixture["cases"]["ade20k"]["outputs"]["ds"]["sha256"]
    assert (resized != LabelBank(split, 0).get(Condition("ds", DS_SEVERITY, 0))[0]).mean() > 0.01
