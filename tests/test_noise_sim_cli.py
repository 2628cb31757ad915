"""noise_sim CLI and PNG I/O: folders in, corrupted folders + manifest out, never touching the input."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import noise_sim
from noise_sim.__main__ import MANIFEST, main
from scdm.label_io import read_index_png, write_index_png


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)  # the CLI sets its own thread count


def label_map(seed: int, size: int = 40) -> np.ndarray:
    """A small map with a few rectangles of ADE20K-like ids."""
    rs = np.random.RandomState(seed)
    x = np.full((size, size), 3, np.uint8)
    for _ in range(4):
        y0, x0 = rs.randint(0, size - 8, 2)
        x[y0:y0 + rs.randint(4, 16), x0:x0 + rs.randint(4, 16)] = rs.choice([5, 7, 10, 12])
    return x


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """labels/: an L map, a P map with a palette, a 16-bit map in a subfolder, and a broken file."""
    root = tmp_path / "labels"
    (root / "sub").mkdir(parents=True)
    Image.fromarray(label_map(0)).save(root / "a.png")
    p = Image.fromarray(label_map(1))
    p.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    p.save(root / "b.png")
    Image.fromarray(label_map(2).astype(np.uint16) * 300).save(root / "sub" / "c.png")
    (root / "broken.png").write_bytes(b"not a png at all")
    return root


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_corrupts_a_folder_and_writes_a_manifest(folder, tmp_path, capsys):
    before = digest(folder)
    out = tmp_path / "out"
    status = main(["--labels", str(folder), "--out", str(out), "--kind", "edge", "--severity", "0.5",
                   "--seed", "3", "--quiet"])
    assert status == 1  # one file failed
    assert digest(folder) == before  # the input is untouched
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["kind"] == "edge" and manifest["params"] == {"radius": 3} and manifest["seed"] == 3
    assert manifest["noise_sim_version"] == noise_sim.__version__
    assert [f["name"] for f in manifest["files"]] == ["a.png", "b.png", "sub/c.png"]
    assert all(0 < f["changed_fraction"] < 1 for f in manifest["files"])
    assert [f["name"] for f in manifest["failed"]] == ["broken.png"]
    assert "broken.png" in capsys.readouterr().err
    # modes (and the palette) survive; the corrupted pixels are unlabeled
    b_in, b_out = Image.open(folder / "b.png"), Image.open(out / "b.png")
    assert b_out.mode == "P" and b_out.getpalette() == b_in.getpalette()
    assert Image.open(out / "sub" / "c.png").mode.startswith("I")
    a_in, a_out = read_index_png(folder / "a.png").ids, read_index_png(out / "a.png").ids
    assert ((a_out == a_in) | (a_out == 0)).all()


def test_output_matches_the_library_with_the_per_file_seed(folder, tmp_path):
    from scdm.seeds import name_index, seed_for

    out = tmp_path / "out"
    main(["--labels", str(folder), "--out", str(out), "--kind", "mixture", "--severity", "0.8", "--quiet",
          "--dataset", "embedded"])
    x = torch.from_numpy(read_index_png(folder / "a.png").ids)
    expected = noise_sim.corrupt(x, "mixture", severity=0.8, dataset="embedded",
                                 generator=torch.Generator().manual_seed(seed_for(0, "corruption", name_index("a.png"))))
    assert np.array_equal(read_index_png(out / "a.png").ids, expected.numpy())


def test_paper_defaults_without_severity(folder, tmp_path):
    out = tmp_path / "out"
    main(["--labels", str(folder), "--out", str(out), "--kind", "ds", "--quiet"])
    assert json.loads((out / MANIFEST).read_text())["params"] == {"factor": 4}
    main(["--labels", str(folder), "--out", str(tmp_path / "o2"), "--kind", "ds", "--param", "factor=2", "--quiet"])
    assert json.loads((tmp_path / "o2" / MANIFEST).read_text())["params"] == {"factor": 2}


def test_instances_folder(tmp_path):
    labels, inst = tmp_path / "labels", tmp_path / "inst"
    labels.mkdir()
    inst.mkdir()
    Image.fromarray(np.full((20, 20), 3, np.uint8)).save(labels / "x.png")
    halves = np.zeros((20, 20), np.uint8)
    halves[:, 10:] = 1
    Image.fromarray(halves).save(inst / "x.png")
    Image.fromarray(np.full((20, 20), 3, np.uint8)).save(labels / "y.png")  # no instance map: reported
    Image.fromarray(np.zeros((20, 21), np.uint8)).save(inst / "y.png")
    out = tmp_path / "out"
    assert main(["--labels", str(labels), "--out", str(out), "--kind", "edge", "--instances", str(inst),
                 "--quiet"]) == 1
    assert (read_index_png(out / "x.png").ids[:, 8:12] == 0).all()
    failed = json.loads((out / MANIFEST).read_text())["failed"]
    assert failed[0]["name"] == "y.png" and "must match" in failed[0]["error"]


@pytest.mark.parametrize("where", ["same", "inside"])
def test_refuses_to_write_into_the_input(folder, where):
    out = folder if where == "same" else folder / "noisy"
    before = digest(folder)
    with pytest.raises(SystemExit) as err:
        main(["--labels", str(folder), "--out", str(out), "--kind", "edge", "--quiet"])
    assert err.value.code == 2 and digest(folder) == before


def test_bad_parameters_fail_before_reading(folder, tmp_path, capsys):
    for extra in (["--severity", "0.5", "--param", "radius=2"], ["--param", "sigma=1"], ["--severity", "2"]):
        with pytest.raises(SystemExit):
            main(["--labels", str(folder), "--out", str(tmp_path / "o"), "--kind", "edge", *extra])
    assert not (tmp_path / "o").exists()


def test_preview_grid(folder, tmp_path):
    path = tmp_path / "preview.png"
    assert main(["--labels", str(folder), "--preview", str(path), "--preview-severities", "0.5", "1"]) == 0
    im = Image.open(path)
    assert im.mode == "RGB" and im.height > len(noise_sim.KINDS) * 40 and im.width > 3 * 40


def test_png_round_trip(tmp_path):
    x = label_map(4).astype(np.int64)
    for name, values in (("l.png", x), ("w.png", x * 200)):
        write_index_png(tmp_path / name, values)
        back = read_index_png(tmp_path / name)
        assert np.array_equal(back.ids, values) and back.ids.dtype == np.int64
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="convert colour-coded"):
        read_index_png(tmp_path / "rgb.png")
