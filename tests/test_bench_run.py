"""bench end to end on tiny random-weight checkpoints at 32 px: report, batch-size independence, resume,
torchrun with two gloo processes, the ADE20K folder layout, and errors before any long work."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.config import (BenchConfig, CorruptionSpec, DatasetKind, DatasetSpec, Metric, ModelKind, ModelSpec,
                          Precision, Reference, Sampler, SamplingSettings, config_to_json)
from bench.report import COLUMNS, read_table
from bench.run import Events, run

ROOT = Path(__file__).resolve().parents[1]
# fd_effnetl0 costs one 1280x1280 eigendecomposition per cell on the CPU: only the ADE20K test computes it
METRICS = (Metric.KID_EFFNETL0, Metric.FEAT_DIVERSITY, Metric.MIOU, Metric.MIOU_NOISY)


def _tiny_checkpoint(path: Path, schedule, labels, label_channels: int) -> Path:
    from scdm.checkpoint import save_checkpoint
    from scdm.config import LabelDiffusionConfig, LabelSchedule, ModelCard
    from scdm.presets import TINY_UNET
    from scdm.unet import UNet

    torch.manual_seed(0)
    unet = replace(TINY_UNET, label_channels=label_channels)
    model = UNet(unet)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    kappa = tuple(2.0 for _ in range(labels.num_classes)) if schedule == LabelSchedule.CLASSWISE else ()
    card = ModelCard(unet=unet, labels=labels, name=path.name, label_diffusion=LabelDiffusionConfig(schedule, kappa=kappa))
    return save_checkpoint(path, model.state_dict(), card)


def tiny_segmenter(path: Path, classes) -> Path:
    from bench.segmenter import SegmenterConfig, build_model, save_segmenter

    cfg = SegmenterConfig(classes=tuple(classes), class_names=(), model_size=None,
                          arch_kwargs={"decoder_channels": [8, 8, 8, 8, 8]})
    torch.manual_seed(0)
    return save_segmenter(path, build_model(cfg), cfg)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from scdm.config import LabelSchedule
    from scdm.presets import world_labels
    from scdm.world import CLASS_IDS

    d = tmp_path_factory.mktemp("bench_assets")
    return {"scdm": _tiny_checkpoint(d / "tiny-scdm", LabelSchedule.CLASSWISE, world_labels(), 12),
            "sdm": _tiny_checkpoint(d / "tiny-sdm", LabelSchedule.NONE, world_labels(), 12),
            "seg": tiny_segmenter(d / "seg", CLASS_IDS)}


def tiny_config(assets, **kw) -> BenchConfig:
    cfg = BenchConfig(
        dataset=DatasetSpec(resolution=32, world_scenes=4, flat_paint_images=8),
        models=(ModelSpec("scdm", str(assets["scdm"])), ModelSpec("sdm", str(assets["sdm"])),
                ModelSpec("real", kind=ModelKind.REAL), ModelSpec("flat-paint", kind=ModelKind.FLAT_PAINT)),
        corruptions=(CorruptionSpec("ds", (0.4,)), CorruptionSpec("random", (0.2,))),
        samplers=(SamplingSettings(steps=2),), diversity_labels=2, diversity_samples=2, metrics=METRICS,
        segmenter=str(assets["seg"]), batch_size=3, metric_batch_size=4, device="cpu", grid_labels=2, figures=False,
        precision=Precision.FP32)
    return replace(cfg, **kw)


@pytest.fixture(scope="module")
def base_run(assets, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_base")
    run(tiny_config(assets, figures=True), out)
    return out


def _samples(run_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted((run_dir / "samples").rglob("*.png"))}


def assert_same_up_to_rounding(a: Path, b: Path) -> None:
    """Same sample files and tables; CPU kernels may round a few pixels differently for other batch shapes."""
    sa, sb = _samples(a), _samples(b)
    assert sa.keys() == sb.keys()
    diff = np.stack([np.abs(np.asarray(Image.open(a / k), int) - np.asarray(Image.open(b / k), int)) for k in sa])
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    ta, tb = read_table(a), read_table(b)
    pd.testing.assert_frame_equal(ta.drop(columns="value"), tb.drop(columns="value"))
    # a pixel rounded differently can flip the tiny segmenter's argmax on a few pixels of a small class: mIoU moves
    # by up to a few 1e-4 (seen on an AMD EPYC: 0.0372 vs 0.0368); the feature metrics stay within 1e-3
    seg = ta["metric"].str.startswith("miou").to_numpy()
    np.testing.assert_allclose(ta["value"][seg], tb["value"][seg], rtol=0, atol=5e-3)
    np.testing.assert_allclose(ta["value"][~seg], tb["value"][~seg], rtol=1e-3, atol=1e-4)


def test_report_files_and_table_shape(base_run: Path) -> None:
    df = read_table(base_run)
    assert tuple(pd.read_csv(base_run / "metrics.csv").columns) == COLUMNS
    assert set(df["model"]) == {"scdm", "sdm", "real", "flat-paint"}
    assert set(df[df["model"] == "real"]["corruption"]) == {"clean"}
    assert set(df["corruption"]) == {"clean", "ds", "random"}
    assert not ((df["corruption"] == "clean") & (df["metric"] == "miou_noisy")).any()
    div = df[df["metric"] == "feat_diversity"]
    assert set(div["model"]) == {"scdm", "sdm"} and set(div["corruption"]) == {"clean"}  # diversity_corrupted off
    # diffusion: clean (kid, feat_diversity, miou) + 2 corrupted x (kid, miou, miou_noisy); real 2; flat-paint 2 + 2 x 3
    assert len(df) == 2 * (3 + 2 * 3) + 2 + (2 + 2 * 3)
    kid = df[(df["metric"] == "kid_effnetl0") & (df["corruption"] == "clean")].set_index("model")["value"]
    assert kid["real"] < kid["scdm"]  # real images are closer to the reference than random-weight samples
    assert (df[df["metric"] == "kid_effnetl0"]["n"] == 4).all()
    assert (df[df["metric"] == "feat_diversity"]["n"] == 2).all()
    for name in ("summary.md", "metrics.parquet", "plots/kid_effnetl0.png", "plots/miou.png", "grids/clean.png",
                 "grids/ds_0.4.png", "labels/clean/00003.png", "labels/random/0.2/s0/00000.png"):
        assert (base_run / name).is_file(), name
    summary = (base_run / "summary.md").read_text()
    assert "| scdm |" in summary
    assert "**Normalised distance, clean labels**" in summary and "| model | kid_effnetl0 |" in summary


def test_summary_and_grids_name_the_classes(base_run: Path) -> None:
    """The per-class IoU table (from the mIoU rows' cached confusions) and the grids' legends use class names."""
    from bench.grids import grid_figure
    from bench.robustness import run_confusions
    from bench.segmenter import class_iou
    from bench.store import Cell, Condition
    from scdm.labels import ClassTable
    from scdm.presets import world_labels

    text = (base_run / "summary.md").read_text()
    table = text[text.index("**Per-class IoU, clean labels**"):].split("\n\n")[1]
    assert table.splitlines()[0] == "| class | scdm | sdm | real | flat-paint |"
    rows = {line.split(" | ")[0][2:]: line for line in table.splitlines()[2:]}
    assert "sky (3)" in rows and not re.search(r"class \d|\| id \d", table)
    iou = class_iou(run_confusions(base_run, ["scdm"])["scdm"]["clean"].sum(0))  # the same number, segmented again
    header = table.splitlines()[0].split(" | ")
    cell = rows["sky (3)"].split(" | ")[header.index("scdm")]
    assert cell == f"{iou[1]:.4f}"  # sky is the segmenter's output 1
    fig = grid_figure(base_run, Condition("ds", 0.4, 0), [Cell("real", None, Condition())], range(2),
                      ClassTable.from_spec(world_labels()))
    names = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "sky" in names and not any(n.startswith(("class ", "id ")) for n in names)
    assert len(list((base_run / "samples" / "scdm").rglob("*.png"))) == 3 * 4 + 2  # + 2 diversity samples


def test_batch_size_independence(assets, base_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bs1"
    run(tiny_config(assets, batch_size=1, metric_batch_size=1), out)
    assert_same_up_to_rounding(base_run, out)


class Interrupt(Exception):
    pass


class KillAfter(Events):
    """Raises after `n` units of work in a stage whose name starts with `prefix` (a killed process)."""

    def __init__(self, prefix: str, n: int):
        self.prefix, self.n, self.active = prefix, n, False

    def stage(self, name: str, total: int) -> None:
        self.active = name.startswith(self.prefix)

    def advance(self, n: int) -> None:
        if self.active:
            self.n -= n
            if self.n <= 0:
                raise Interrupt


def test_resume_after_interruption_gives_identical_table(assets, base_run: Path, tmp_path: Path) -> None:
    """Killed after a whole batch (3 images), the re-run makes the same batches: bit-identical files and table."""
    out = tmp_path / "resume"
    cfg = tiny_config(assets)
    with pytest.raises(Interrupt):
        run(cfg, out, KillAfter("sampling sdm", 3))
    assert not (out / "metrics.csv").exists() and not list(out.rglob("*.tmp"))
    with pytest.raises(Interrupt):
        run(cfg, out, KillAfter("scoring", 4))
    assert not (out / "metrics.csv").exists()
    run(cfg, out)
    assert _samples(out) == _samples(base_run)
    pd.testing.assert_frame_equal(read_table(out), read_table(base_run))
    before = (out / "metrics.csv").read_bytes()
    run(cfg, out)  # a finished run re-runs from its cached rows to the same table
    assert (out / "metrics.csv").read_bytes() == before


def test_torchrun_two_gloo_processes_match_single_process(assets, base_run: Path, tmp_path: Path) -> None:
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(config_to_json(tiny_config(assets)))
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "bench", "run", "--config", str(cfg_path), "--out", str(out), "--quiet", "--threads", "1"]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_up_to_rounding(base_run, out)


def test_ade20k_folder_layout_end_to_end(tmp_path: Path) -> None:
    from scdm.config import LabelSchedule
    from scdm.presets import ade20k_labels
    from test_bench_datasets import make_ade20k

    root = make_ade20k(tmp_path / "ADEChallengeData2016", n_val=3, n_train=3)
    ckpt = _tiny_checkpoint(tmp_path / "ade-scdm", LabelSchedule.CLASSWISE, ade20k_labels(), 151)
    seg = tiny_segmenter(tmp_path / "ade-seg", range(1, 151))
    cfg = BenchConfig(dataset=DatasetSpec(kind=DatasetKind.ADE20K, root=str(root), resolution=32, reference=Reference.EVAL),
                      models=(ModelSpec("ade-scdm", str(ckpt)), ModelSpec("flat-paint", kind=ModelKind.FLAT_PAINT)),
                      corruptions=(CorruptionSpec("edge", (0.3,)),), samplers=(SamplingSettings(steps=2),),
                      diversity_labels=0, metrics=(Metric.FD_EFFNETL0, Metric.MIOU, Metric.MIOU_NOISY),
                      segmenter=str(seg), device="cpu")
    run(cfg, tmp_path / "out")
    df = read_table(tmp_path / "out")
    assert set(df["dataset"]) == {"ade20k"} and set(df["model"]) == {"ade-scdm", "flat-paint"}
    assert len(df[(df["model"] == "ade-scdm") & (df["corruption"] == "edge")]) == 3
    noisy = np.asarray(Image.open(tmp_path / "out/labels/edge/0.3/s0/00000.png"))
    clean = np.asarray(Image.open(tmp_path / "out/labels/clean/00000.png"))
    assert (noisy == 0).mean() > (clean == 0).mean()  # edges became ADE20K's unlabeled id
    summary = (tmp_path / "out/summary.md").read_text()
    assert "| sky (3) |" in summary and "| tree (5) |" in summary and not re.search(r"class \d", summary)
    assert (tmp_path / "out/grids/edge_0.3.png").is_file()


def test_bad_input_fails_before_sampling(assets, tmp_path: Path) -> None:
    from test_bench_datasets import make_ade20k

    out = tmp_path / "bad"
    with pytest.raises(ValueError, match="model 'x': unknown model 'no/such/ckpt'"):
        run(tiny_config(assets, models=(ModelSpec("x", "no/such/ckpt"),)), out)
    with pytest.raises(ValueError, match="cannot load segmenter"):
        run(tiny_config(assets, segmenter=str(tmp_path / "no-segmenter")), out)
    root = make_ade20k(tmp_path / "ade", n_val=2, n_train=1)
    ade = DatasetSpec(kind=DatasetKind.ADE20K, root=str(root), resolution=32)
    with pytest.raises(ValueError, match=r"model 'scdm' .* has no class for label ids \["):
        run(tiny_config(assets, dataset=ade, models=(ModelSpec("scdm", str(assets["scdm"])),)), out)
    assert not (out / "samples").exists()


def test_cli_run_plot_compare(assets, base_run: Path, tmp_path: Path, capsys) -> None:
    from bench.__main__ import main

    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(config_to_json(tiny_config(assets)))
    assert main(["run", "--config", str(cfg_path), "--out", str(tmp_path / "x"), "--dry-run", "--limit", "2",
                 "--steps", "3", "--corruption", "edge", "--severities", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert '"limit": 2' in printed and '"steps": 3' in printed and '"edge"' in printed
    assert main(["plot", str(base_run), "--out", str(tmp_path / "plots")]) == 0
    assert (tmp_path / "plots" / "miou_noisy.png").is_file()
    assert main(["compare", str(base_run), str(base_run), "--metric", "miou"]) == 0
    assert "diff" in capsys.readouterr().out
    assert main(["run", "--out", str(tmp_path / "y"), "--model", "nope", "--quiet"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err


def test_robustness_reproduces_the_table_and_writes_its_report(base_run: Path, capsys) -> None:
    from bench.__main__ import main
    from bench.robustness import drops, miou_batch, run_confusions

    conf = run_confusions(base_run, ["scdm", "sdm"])
    assert set(conf["scdm"]) == {"clean", "ds 0.4", "random 0.2"} and conf["scdm"]["clean"].shape == (4, 12, 12)
    d = drops(read_table(base_run)).set_index(["model", "corruption"])["drop"]
    for model in ("scdm", "sdm"):  # per-label confusions, summed, give the table's mIoU exactly
        for cond, kind in (("ds 0.4", "ds"), ("random 0.2", "random")):
            got = miou_batch(conf[model]["clean"].sum(0)) - miou_batch(conf[model][cond].sum(0))
            assert got == pytest.approx(d[(model, kind)], abs=1e-9)
    assert main(["robustness", str(base_run), "--resamples", "50"]) == 0
    out = capsys.readouterr().out
    assert "| mean |" in out and (base_run / "robustness.md").read_text() in out
    assert main(["robustness", str(base_run), "--models", "scdm", "real"]) == 2
    assert "share no corrupted condition" in capsys.readouterr().err
    victim = next((base_run / "samples" / "sdm").rglob("00001_0.png"))
    kept = victim.read_bytes()
    victim.unlink()
    try:
        assert main(["robustness", str(base_run)]) == 2
        assert "samples of sdm are missing" in capsys.readouterr().err
    finally:
        victim.write_bytes(kept)


def test_ddim_eta_settings_are_separate_cells(assets, tmp_path: Path) -> None:
    cfg = tiny_config(assets, models=(ModelSpec("sdm", str(assets["sdm"])),), corruptions=(), diversity_labels=0,
                      metrics=(Metric.MIOU,),
                      samplers=(SamplingSettings(Sampler.DDIM, 2), SamplingSettings(Sampler.DDIM, 2, eta=1.0)))
    run(cfg, tmp_path)
    df = read_table(tmp_path)
    assert sorted(df["eta"]) == [0.0, 1.0]
    folders = sorted((tmp_path / "samples" / "sdm").iterdir())  # ddim_2steps_g1.5_fp32-..., ddim_2steps_g1.5_eta1_fp32-...
    assert [f.name.split("-")[0] for f in folders] == ["ddim_2steps_g1.5_eta1_fp32", "ddim_2steps_g1.5_fp32"]
    b, a = (np.stack([np.asarray(Image.open(p)) for p in sorted(f.rglob("*.png"))]) for f in folders)
    assert a.shape == b.shape == (4, 32, 32, 3) and (a != b).any()  # eta reaches the sampler


def test_every_kind_writes_only_the_encodings_ids() -> None:
    """The bank gives kinds the run's encoding (colour decodes with the world's palette, not ADE20K's 150 classes):
    every kind at full severity keeps the world's ids, the ones the bundled models have classes for."""
    import noise_sim
    from bench.datasets import dataset_labels, load_eval
    from bench.sampling import LabelBank
    from bench.store import Condition
    from scdm.labels import ClassTable, valid_ids

    spec = DatasetSpec(world_scenes=6)
    split = load_eval(spec, None, None)
    world = dataset_labels(DatasetKind.EMBEDDED)
    bank = LabelBank(split, 0, ClassTable.from_spec(world))
    for kind in noise_sim.KINDS:
        maps = bank.get(Condition(kind, 1.0, 0))
        assert set(np.unique(maps).tolist()) <= valid_ids(world), kind
        assert (maps != split.labels).any(), kind


def test_a_corruption_writing_unknown_ids_stops_the_run_before_sampling() -> None:
    """Without the encoding, colour decodes with ADE20K's palette and writes ids the world models lack: the check
    that runs before sampling names the condition, the map and the model."""
    from types import SimpleNamespace

    from bench.datasets import dataset_labels, load_eval
    from bench.run import check_corrupted
    from bench.sampling import LabelBank
    from bench.store import Condition

    split = load_eval(DatasetSpec(world_scenes=4), None, None)
    model = SimpleNamespace(labels=dataset_labels(DatasetKind.EMBEDDED), spec=SimpleNamespace(name="world-model"))
    conds = [Condition("edge", 0.5, 0), Condition("colour", 1.0, 0)]
    with pytest.raises(ValueError, match=r"corruption 'colour' at severity 1 wrote label ids \[.*\(first in .*\) that "
                                         r"model 'world-model' has no class for"):
        check_corrupted([model], LabelBank(split, 0, None), conds)
    check_corrupted([model], LabelBank(split, 0, None), conds[:1])  # the other kinds pass
