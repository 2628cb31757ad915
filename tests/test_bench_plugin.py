"""bench on label maps alone (`--dataset labels`) and with plug-in models (bench/plugin.py): hand-drawn maps of every
kind the label reader takes, a plug-in next to a bundled and a tiny model, versions kept apart, errors before any
sampling, and diversity on corrupted labels."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.config import (BenchConfig, CorruptionSpec, DatasetKind, DatasetSpec, Metric, ModelKind, ModelSpec,
                          SamplingSettings, validate)
from bench.plugin import load_plugin
from bench.report import read_table
from bench.run import run
from scdm.datasets import EMBEDDED_IDS, embedded_labels
from scdm.labels import ClassTable
from test_bench_run import assets, tiny_config  # noqa: F401  (assets: module fixture of tiny checkpoints)

HERE = Path(__file__).resolve().parent
PAINT = "bench_plugin_model:make"  # tests/ is on sys.path under pytest
BUILDING, SKY, TREE, ROAD, GRASS, WATER = 2, 3, 5, 7, 10, 22
assert {BUILDING, SKY, TREE, ROAD, GRASS, WATER} <= set(EMBEDDED_IDS)


def draw_maps(root: Path) -> dict[str, np.ndarray]:
    """Three maps not from the world generator, each saved as another kind of label PNG: raw ids at their own size."""
    root.mkdir(parents=True, exist_ok=True)
    stripes = np.full((40, 48), SKY, np.uint8)  # 8-bit index PNG
    stripes[20:] = GRASS
    stripes[20:, ::8] = ROAD
    Image.fromarray(stripes).save(root / "a_stripes.png")
    yy, xx = np.mgrid[:64, :64]
    circle = np.where((yy - 32) ** 2 + (xx - 32) ** 2 < 300, WATER, BUILDING).astype(np.uint8)
    Image.fromarray(ClassTable.from_spec(embedded_labels()).colorize(circle)).save(root / "b_circle.png")  # RGB
    split = np.full((32, 32), TREE, np.uint8)  # palette PNG whose indices are the ids (its colours are no classes')
    split[:, :10] = SKY
    im = Image.fromarray(split).convert("P")
    im.putpalette([v for i in range(256) for v in ((7 * i) % 256, (13 * i) % 256, (29 * i) % 256)])
    im.save(root / "c_palette.png")
    return {"a_stripes": stripes, "b_circle": circle, "c_palette": split}


def labels_config(root: Path, *models: ModelSpec, encoding: DatasetKind | None = None, **kw) -> BenchConfig:
    cfg = BenchConfig(dataset=DatasetSpec(kind=DatasetKind.LABELS, root=str(root), resolution=32, encoding=encoding),
                      models=models, corruptions=(CorruptionSpec("ds", (0.4,)),), samplers=(SamplingSettings(steps=2),),
                      diversity_labels=2, diversity_samples=2, metrics=(Metric.MIOU, Metric.MIOU_NOISY),
                      batch_size=2, device="cpu", figures=False)
    return replace(cfg, **kw)


def test_label_only_folder_with_a_bundled_model_and_a_plugin(tmp_path) -> None:
    maps = draw_maps(tmp_path / "maps")
    models = (ModelSpec("embedded-sdm", "embedded-sdm"), ModelSpec("paint", PAINT, ModelKind.PLUGIN),
              ModelSpec("real", kind=ModelKind.REAL), ModelSpec("flat-paint", kind=ModelKind.FLAT_PAINT))
    out = tmp_path / "out"
    run(labels_config(tmp_path / "maps", *models, metrics=None, figures=True), out)
    df = read_table(out)
    assert set(df["model"]) == {"embedded-sdm", "paint"} and set(df["dataset"]) == {"labels"}
    assert not set(df["metric"]) & {"fid", "kid", "fd_effnetl0", "kid_effnetl0"}
    assert {"miou", "miou_noisy", "feat_diversity"} <= set(df["metric"])
    assert set(df[df["model"] == "paint"]["weights"]) == {"paint-v1"}
    for i, name in enumerate(sorted(maps)):  # read exactly (index, colour-coded, palette) and resized NEAREST
        want = np.asarray(Image.fromarray(maps[name]).resize((32, 32), Image.NEAREST))
        assert np.array_equal(np.asarray(Image.open(out / "labels" / "clean" / f"{i:05d}.png")), want), name
    notes = (out / "summary.md").read_text().split("Notes:")[1]
    for line in ("maps read in the `embedded` encoding", "2 index maps, 1 decoded by colour",
                 "not run: `real`: no photos in a label-only folder", "not run: `flat-paint`: no training photos",
                 "not computed: fid: no photos", "not computed: fd_effnetl0: no photos", "mIoU segmenter: `embedded`"):
        assert line in notes, line
    assert "| water (22) |" in (out / "summary.md").read_text()  # classes named by the encoding
    assert json.loads((out / "config.json").read_text())["dataset"]["encoding"] == "embedded"  # resolved, recorded
    assert json.loads((out / "samples" / "paint" / "none" / "cell.json").read_text())["weights"] == "paint-v1"
    assert (out / "grids" / "ds_0.4.png").is_file()
    # the same folder with the encoding named, and other batches: nothing new is sampled, same table
    before = {p: p.read_bytes() for p in (out / "samples").rglob("*.png")}
    run(labels_config(tmp_path / "maps", *models, metrics=None, encoding=DatasetKind.EMBEDDED, batch_size=1), out)
    assert {p: p.read_bytes() for p in (out / "samples").rglob("*.png")} == before
    # a plug-in is seeded per image: its images do not depend on the batch size
    other = tmp_path / "bs1"
    run(labels_config(tmp_path / "maps", ModelSpec("paint", PAINT, ModelKind.PLUGIN), batch_size=1), other)
    for p in (other / "samples" / "paint").rglob("*.png"):
        assert p.read_bytes() == (out / p.relative_to(other)).read_bytes()


def test_plugin_next_to_a_tiny_model_on_photos_and_versions_kept_apart(assets, tmp_path) -> None:  # noqa: F811
    models = (ModelSpec("scdm", str(assets["scdm"])), ModelSpec("paint", PAINT, ModelKind.PLUGIN),
              ModelSpec("real", kind=ModelKind.REAL))
    cfg = tiny_config(assets, models=models, corruptions=(CorruptionSpec("random", (0.2,)),),
                      metrics=(Metric.MIOU, Metric.HF_ENERGY), limit=2, diversity_labels=1)
    out = tmp_path / "out"
    run(cfg, out)
    df = read_table(out)
    paint = df[df["model"] == "paint"]
    assert set(paint["corruption"]) == {"clean", "random"} and set(paint["metric"]) == {"miou", "hf_energy"}
    assert set(paint["sampler"]) == {"none"} and len(list((out / "samples" / "paint").rglob("*.png"))) == 2 * 2 + 1
    v2 = replace(cfg, models=(ModelSpec("paint", "bench_plugin_model:make_v2", ModelKind.PLUGIN),))
    with pytest.raises(ValueError, match=r"was made with other inputs \(weights: paint-v1 -> paint-v2\)"):
        run(v2, out)


def test_plugin_without_digest_is_identified_by_its_source_file(tmp_path) -> None:
    source = (HERE / "bench_plugin_model.py").read_text()
    path = tmp_path / "my_model.py"
    path.write_text(source)
    first = load_plugin(f"{path}:make_undeclared")
    assert first.encoding is None and len(first.digest) == 16
    assert load_plugin(f"{path}:make_undeclared").digest == first.digest
    path.write_text(source + "\n# another version\n")
    assert load_plugin(f"{path}:make_undeclared").digest != first.digest
    plugin = load_plugin(PAINT, device="cpu")
    assert plugin.digest == "paint-v1" and plugin.encoding == embedded_labels() and plugin.model.device == "cpu"


@pytest.mark.parametrize("entry, match", [
    ("no_such_module_xyz:make", r"cannot import no_such_module_xyz: ModuleNotFoundError"),
    ("missing/file.py:make", r"cannot import missing/file.py: FileNotFoundError"),
    ("bench_plugin_model:nope", r"bench_plugin_model has no attribute 'nope'"),
    ("bench_plugin_model:NOT_CALLABLE", r"NOT_CALLABLE \(int\) is not a callable factory"),
    ("bench_plugin_model:make_raises", r"the factory raised RuntimeError: no weights here"),
    ("bench_plugin_model:make_no_generate", r"the factory returned 'object', which has no generate method"),
    ("bench_plugin_model:make_bad_digest", r"`digest` must be a non-empty string, got 3"),
])
def test_plugin_entry_point_errors_name_it(entry, match) -> None:
    with pytest.raises(ValueError, match=rf"^plug-in '{entry}': {match}"):
        load_plugin(entry)


def test_bad_plugins_and_label_folders_fail_before_sampling(assets, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "out"
    for entry, got in (("make_wrong_shape", r"uint8 \(1, 32, 32\)"), ("make_wrong_dtype", r"float32 \(1, 32, 32, 3\)")):
        cfg = tiny_config(assets, models=(ModelSpec("x", f"bench_plugin_model:{entry}", ModelKind.PLUGIN),))
        with pytest.raises(ValueError, match=rf"model 'x': plug-in 'bench_plugin_model:{entry}': generate\(labels "
                                             rf"\(1, 32, 32\), seeds\) returned ndarray {got}; expected a numpy uint8 "
                                             rf"array of shape \(1, 32, 32, 3\)"):
            run(cfg, out)
    with pytest.raises(ValueError, match=r"plug-in model 'x' needs `source` = 'package.module:factory'"):
        validate(BenchConfig(models=(ModelSpec("x", "no_colon", ModelKind.PLUGIN),)))

    maps = tmp_path / "maps"
    draw_maps(maps)
    sdm = ModelSpec("sdm", str(assets["sdm"]))
    bad = np.full((16, 16), SKY, np.uint8)
    bad[:4] = 99
    Image.fromarray(bad).save(maps / "d_bad.png")
    with pytest.raises(ValueError, match=r"label map .*d_bad.png: label ids \[99\] are not classes of the embedded "
                                         r"encoding \(99: 64 px\); valid raw ids are 2 building"):
        run(labels_config(maps, sdm), out)
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:] = ClassTable.from_spec(embedded_labels()).colorize(np.full((16, 16), SKY))
    rgb[:2] = (1, 2, 200)  # far from every class colour
    Image.fromarray(rgb).save(maps / "d_bad.png")
    with pytest.raises(ValueError, match=r"d_bad.png: 32 px of colours that are no class of the embedded encoding "
                                         r"\(#0102c8 x32\)"):
        run(labels_config(maps, sdm), out)
    (maps / "d_bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read .*d_bad.png"):
        run(labels_config(maps, sdm), out)
    (maps / "d_bad.png").unlink()
    Image.fromarray(rgb).save(maps / "d_bad.jpg")
    with pytest.raises(ValueError, match=r"label maps must be PNG \(lossless\), found .*d_bad.jpg"):
        run(labels_config(maps, sdm), out)
    (maps / "d_bad.jpg").unlink()
    with pytest.raises(ValueError, match=r"model 'sdm' .* has no class for label ids \[1\]"):  # ADE20K wall
        Image.fromarray(np.ones((16, 16), np.uint8)).save(maps / "d_wall.png")
        run(labels_config(maps, sdm, encoding=DatasetKind.ADE20K), out)
    (maps / "d_wall.png").unlink()
    with pytest.raises(ValueError, match=r"need an encoding and no model declares one: pass --encoding"):
        run(labels_config(maps, ModelSpec("u", "bench_plugin_model:make_undeclared", ModelKind.PLUGIN)), out)
    with pytest.raises(ValueError, match=r"metric 'fd_effnetl0' cannot run here: no photos in a label-only folder"):
        run(labels_config(maps, sdm, metrics=(Metric.FD_EFFNETL0,)), out)
    with pytest.raises(ValueError, match=r"no photos for the real and flat-paint rows: give at least one --model"):
        run(labels_config(maps, ModelSpec("real", kind=ModelKind.REAL)), out)
    with pytest.raises(ValueError, match=r"dataset.encoding \(--encoding\) is for label-only folders"):
        validate(replace(BenchConfig(), dataset=DatasetSpec(encoding=DatasetKind.ADE20K)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no label PNGs in .*empty"):
        run(labels_config(empty, sdm), out)
    assert not (out / "samples").exists()


def test_models_with_other_encodings_need_one_named(assets, tmp_path) -> None:  # noqa: F811
    from scdm.config import LabelSchedule
    from scdm.presets import ade20k_labels
    from test_bench_run import _tiny_checkpoint

    ade = _tiny_checkpoint(tmp_path / "ade", LabelSchedule.NONE, ade20k_labels(), 151)
    draw_maps(tmp_path / "maps")
    cfg = labels_config(tmp_path / "maps", ModelSpec("sdm", str(assets["sdm"])), ModelSpec("ade", str(ade)),
                        corruptions=(), diversity_labels=0)
    with pytest.raises(ValueError, match=r"models 'sdm' and 'ade' read label ids differently .* pass --encoding"):
        run(cfg, tmp_path / "out")
    run(replace(cfg, dataset=replace(cfg.dataset, encoding=DatasetKind.ADE20K), models=cfg.models[1:],
                segmenter=None, metrics=(Metric.HF_ENERGY,)), tmp_path / "ade-out")  # the world's ids are ADE20K's
    assert set(read_table(tmp_path / "ade-out")["model"]) == {"ade"}


def test_diversity_on_corrupted_labels(assets, tmp_path) -> None:  # noqa: F811
    """diversity_corrupted adds feat_diversity rows (and their extra samples) to corrupted cells, also on a re-run."""
    cfg = tiny_config(assets, models=(ModelSpec("scdm", str(assets["scdm"])),),
                      corruptions=(CorruptionSpec("random", (0.2,)),), metrics=(Metric.FEAT_DIVERSITY,), limit=2)
    out = tmp_path / "out"
    run(cfg, out)
    assert set(read_table(out)["corruption"]) == {"clean"}
    run(replace(cfg, diversity_corrupted=True), out)
    df = read_table(out)
    assert set(df["corruption"]) == {"clean", "random"} and (df["n"] == cfg.diversity_labels).all()
    assert len(list((out / "samples" / "scdm").rglob("random/**/*.png"))) == 2 + 2  # + 2 diversity samples


def test_cli_flags_for_label_folders_and_plugins(tmp_path, capsys) -> None:
    from bench.__main__ import main

    assert main(["run", "--dataset", "labels", "--root", str(tmp_path), "--encoding", "embedded", "--out",
                 str(tmp_path / "x"), "--plugin", "paint=bench_plugin_model:make", "--plugin", "dir/my_model.py:make",
                 "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["dataset"]["kind"] == "labels" and cfg["dataset"]["encoding"] == "embedded"
    assert [(m["name"], m["kind"]) for m in cfg["models"]] == [
        ("embedded-scdm", "diffusion"), ("embedded-sdm", "diffusion"), ("paint", "plugin"), ("my_model", "plugin"),
        ("real", "real"), ("flat-paint", "flat-paint")]
    assert main(["run", "--out", str(tmp_path / "y"), "--encoding", "ade20k", "--dry-run"]) == 2
    assert "is for label-only folders" in capsys.readouterr().err
