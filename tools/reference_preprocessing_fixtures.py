"""Generate tests/fixtures/reference/preprocessing.json: the official evaluation loader's outputs, as digests.

Usage::

    git -C <mirror of github.com/mlvlab/SCDM> archive HEAD | tar -x -C SCDM_CHECKOUT
    python tools/reference_preprocessing_fixtures.py SCDM_CHECKOUT [--out tests/fixtures/reference/preprocessing.json]

The official functions are imported from the checkout at run time; only their outputs' digests (and the
outputs themselves, PNG + base64, for failure messages) are written here, none of their code.

* `guided_diffusion/image_datasets.py` `resize_arr([photo, label, instance], 256, keep_aspect)`, fed the PIL
  images exactly as `ImageDataset.__getitem__` makes them: photo `.convert("RGB")`, label and instance maps
  `.convert("L")`. keep_aspect=False for ADE20K, CelebAMask-HQ and COCO-Stuff (the evaluation branch),
  True for Cityscapes. CelebAMask-HQ's instance map is its label file, as the reference lists them.
  The module imports `blobfile` and `mpi4py` at the top; where they are not installed, empty stand-ins are
  put in `sys.modules` (neither is used by `resize_arr`).
* `image_process/downsample.py` `resize(target_path, save_path, 64, NEAREST)` (the paper's DS folder: the
  ORIGINAL annotation straight to 64 x 64). The script runs on its hard-coded dataset paths when imported,
  so only its `resize` function is compiled from the file (its import lines plus that definition). Its
  64 x 64 PNG is then read back as the loader does and resized by `resize_arr` with the photo to 256 px.

Inputs come from `make_inputs()` in tests/test_reference_preprocessing.py (closed-form integer formulas);
they are written as PNG files (lossless, so the photo bytes do not depend on a JPEG decoder) and read back
with PIL, as the loader reads them. The JSON records each input's sha256, so the test knows it rebuilt them.
"""
from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import importlib.util
import io
import json
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "reference" / "preprocessing.json"
RESOLUTION = 256
DS_SIZE = RESOLUTION // 4  # the paper's DS: factor 4


def load_test_module():
    spec = importlib.util.spec_from_file_location("reference_preprocessing_inputs",
                                                  REPO / "tests" / "test_reference_preprocessing.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO))
    spec.loader.exec_module(module)
    return module


def import_reference(ref_dir: Path):
    """(image_datasets module, downsample.resize) from the official checkout."""
    for name in ("blobfile", "mpi4py"):
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            if name == "mpi4py":
                stub.MPI = types.SimpleNamespace()
            sys.modules[name] = stub
    sys.path.insert(0, str(ref_dir))
    import guided_diffusion.image_datasets as image_datasets  # noqa: E402

    source = (ref_dir / "image_process" / "downsample.py").read_text()
    tree = ast.parse(source)
    keep = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
            or (isinstance(n, ast.FunctionDef) and n.name == "resize")]
    namespace: dict = {}
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(ref_dir / "image_process" / "downsample.py"), "exec"),
         namespace)
    return image_datasets, namespace["resize"]


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def record(array: np.ndarray) -> dict:
    array = np.ascontiguousarray(array.astype(np.uint8))
    png = io.BytesIO()
    Image.fromarray(array).save(png, "PNG", optimize=True)
    return {"shape": list(array.shape), "sha256": sha256(array), "png": base64.b64encode(png.getvalue()).decode()}


def read(path: Path, mode: str) -> Image.Image:
    with open(path, "rb") as f:  # as ImageDataset: open, load, convert
        im = Image.open(f)
        im.load()
    return im.convert(mode)


def reference_case(image_datasets, ds_resize, arrays: dict, keep_aspect: bool, work: Path) -> dict:
    for key, arr in arrays.items():
        (work / key).mkdir()
        Image.fromarray(arr).save(work / key / "x.png")
    photo = read(work / "photo" / "x.png", "RGB")
    label = read(work / "label" / "x.png", "L")
    instance = read(work / "instance" / "x.png", "L") if "instance" in arrays else None
    if keep_aspect:  # Cityscapes' branch
        img, lab, inst = image_datasets.resize_arr([photo, label, instance], RESOLUTION)
    else:  # every other dataset's evaluation branch
        img, lab, inst = image_datasets.resize_arr([photo, label, instance], RESOLUTION, keep_aspect=False)
    out = {"image": record(img), "label": record(lab)}
    if inst is not None:
        out["instance"] = record(inst)
    if not keep_aspect:
        (work / "ds").mkdir()
        ds_resize(str(work / "label"), str(work / "ds"), DS_SIZE, Image.NEAREST)
        small = read(work / "ds" / "x.png", "L")
        assert small.size == (DS_SIZE, DS_SIZE)
        _, ds, _ = image_datasets.resize_arr([photo, small, None], RESOLUTION, keep_aspect=False)
        out["ds"] = record(ds)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="extracted official SCDM checkout")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    image_datasets, ds_resize = import_reference(args.reference)
    tests = load_test_module()
    cases = {}
    for case, arrays in tests.make_inputs().items():
        arrays = dict(arrays)
        if case == "celebamask_hq":  # the reference lists CelebAMask-HQ's label files as its instance maps
            arrays["instance"] = arrays["label"]
        keep_aspect = case.startswith("cityscapes")
        with tempfile.TemporaryDirectory() as tmp:
            outputs = reference_case(image_datasets, ds_resize, arrays, keep_aspect, Path(tmp))
        cases[case] = {"inputs": {k: sha256(v) for k, v in tests.make_inputs()[case].items()},
                       "keep_aspect": keep_aspect, "outputs": outputs}
        print(case, {k: v["shape"] for k, v in outputs.items()})
    sources = {p: hashlib.sha256((args.reference / p).read_bytes()).hexdigest()
               for p in ("guided_diffusion/image_datasets.py", "image_process/downsample.py")}
    doc = {"about": "official SCDM evaluation-loader outputs; see tools/reference_preprocessing_fixtures.py",
           "resolution": RESOLUTION, "ds_size": DS_SIZE, "pillow": PIL.__version__, "numpy": np.__version__,
           "reference_sources_sha256": sources, "cases": cases}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
