"""bench.summary and bench.robustness_report: graded scores on hand-made numbers and synthetic confusions, the
class-size view, the step-budget table, the pictures and robustness.md, the grid configs, and a tiny end to end."""
from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bench.robustness import BootstrapConfig, bootstrap_weights, compare_pair, resampled_confusions
from bench.segmenter import class_iou, miou_batch
from bench.summary import (class_areas, corruption_error, default_baseline, graded_summary, grid_layout, mean_iou,
                           resampled_iou, robustness_auc, size_groups, step_budget)
from test_bench_robustness import CLASSES, _confusions

ROOT = Path(__file__).resolve().parents[1]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------- arithmetic

def test_auc_and_ce_on_hand_made_numbers() -> None:
    assert robustness_auc(0.8, np.array([0.8, 0.8, 0.8]), [0.2, 0.6, 1.0]) == pytest.approx(1.0)  # no degradation
    # clean 0.8, then 0.6 at 0.5 and 0.4 at 1: area 0.5 * 0.7 + 0.5 * 0.5 = 0.6, relative to 0.8 * 1
    assert robustness_auc(0.8, np.array([0.6, 0.4]), [0.5, 1.0]) == pytest.approx(0.75)
    assert robustness_auc(0.5, np.array([0.25, 0.25]), [0.2, 0.4]) == pytest.approx((0.2 * 0.375 + 0.2 * 0.25) / 0.2)
    batched = robustness_auc(np.array([0.8, 0.8]), np.array([[0.8, 0.8], [0.6, 0.4]]), [0.5, 1.0])
    np.testing.assert_allclose(batched, [1.0, 0.75])  # a leading resample axis
    base = np.array([0.8, 0.6])  # errors 0.2, 0.4
    assert corruption_error(base, base) == pytest.approx(1.0)  # the baseline has CE 1 by definition
    assert corruption_error(np.array([0.6, 0.2]), base) == pytest.approx(2.0)  # twice the errors: CE 2
    assert corruption_error(np.array([0.9, 0.8]), base) == pytest.approx(0.5)


def test_default_baseline_is_the_sdm_model() -> None:
    assert default_baseline(["embedded-scdm", "embedded-sdm", "embedded-scdm-uniform"]) == "embedded-sdm"
    assert default_baseline(["scdm", "SDM"]) == "SDM"
    assert default_baseline(["a", "b"]) is None and default_baseline(["sdm", "sdm-2"]) is None


def test_resampled_iou_matches_the_summed_confusions() -> None:
    cms = _confusions(12, 0, 0.3)
    w = bootstrap_weights(12, BootstrapConfig(20), gen())
    full = resampled_confusions(w, cms)  # (R, K, K)
    np.testing.assert_allclose(resampled_iou(w, cms), class_iou(full))
    np.testing.assert_allclose(mean_iou(resampled_iou(w, cms)), miou_batch(full))


def test_class_areas_and_size_tertiles() -> None:
    cms = np.zeros((2, 3, 3), np.int64)
    cms[0, 0, 0], cms[0, 1, 1] = 3, 1  # label 0: class 0 covers 3/4, class 1 1/4
    cms[1, 1, 2], cms[1, 2, 2] = 2, 2  # label 1: classes 1 and 2 half each (rows = target, whatever the prediction)
    np.testing.assert_allclose(class_areas(cms), [0.375, 0.375, 0.25])
    groups = size_groups(np.array([0.5, 0.0, 0.1, 0.2, 0.05, 0.3, 0.01]))
    assert list(groups) == ["large", "", "medium", "medium", "small", "large", "small"]  # absent class: no group
    assert list(size_groups(np.array([0.3, 0.1, 0.2, 0.4]))) == ["medium", "small", "small", "large"]


# ---------------------------------------------------------------------------------------------- graded summary

def _grid(n: int, seed: int = 0) -> dict:
    """'steady' keeps its clean confusions under every corruption; 'sdm' degrades with severity."""
    clean = _confusions(n, seed, 0.1)
    steady = {("clean", 0.0): clean, **{(k, s): clean for k in ("ds", "edge") for s in (0.5, 1.0)}}
    sdm = {("clean", 0.0): clean}
    for i, k in enumerate(("ds", "edge")):
        for j, s in enumerate((0.5, 1.0)):
            sdm[(k, s)] = _confusions(n, seed + 10 * i + j + 1, 0.2 + 0.3 * s)
    return {"steady": steady, "sdm": sdm}


def _value(frame: pd.DataFrame, **key) -> pd.Series:
    hit = frame.loc[np.logical_and.reduce([frame[k] == v for k, v in key.items()])]
    assert len(hit) == 1, (key, hit)
    return hit.iloc[0]


def test_graded_summary_scores_and_intervals() -> None:
    s = graded_summary(_grid(40), baseline="sdm", config=BootstrapConfig(300), generator=gen())
    assert s.kinds == ("ds", "edge") and s.labels == 40 and s.baseline == "sdm"
    for kind in ("ds", "edge", "mean"):
        auc = _value(s.scores, model="steady", corruption=kind, statistic="auc")
        assert auc.value == pytest.approx(1.0) and auc.low == pytest.approx(1.0) and auc.high == pytest.approx(1.0)
        ce = _value(s.scores, model="sdm", corruption=kind, statistic="ce")
        assert ce.value == pytest.approx(1.0) and ce.low == pytest.approx(1.0) and ce.high == pytest.approx(1.0)
        assert _value(s.scores, model="sdm", corruption=kind, statistic="auc").value < 0.9
        diff = _value(s.scores, model="steady", corruption=kind, statistic="auc_diff")
        assert diff.low > 0  # the steady model is significantly more robust
        assert _value(s.scores, model="steady", corruption=kind, statistic="ce").high < 1
    assert not ((s.scores["model"] == "sdm") & (s.scores["statistic"] == "auc_diff")).any()
    for frame in (s.scores, s.curves, s.classes, s.sizes):
        ok = frame.dropna(subset=["low"])
        assert len(ok) and ((ok["low"] <= ok["value"] + 1e-12) & (ok["value"] <= ok["high"] + 1e-12)).all()
    diff = _value(s.curves, model="steady", corruption="edge", severity=1.0, statistic="miou_diff")
    own = _value(s.curves, model="steady", corruption="edge", severity=1.0, statistic="miou").value
    assert diff.value == pytest.approx(own - _value(s.curves, model="sdm", corruption="edge", severity=1.0,
                                                    statistic="miou").value)
    again = graded_summary(_grid(40), baseline="sdm", config=BootstrapConfig(300), generator=gen())
    pd.testing.assert_frame_equal(again.scores, s.scores)  # the generator fixes the resamples


def test_intervals_shrink_with_more_labels() -> None:
    width = {}
    for n in (16, 256):
        s = graded_summary(_grid(n), baseline="sdm", config=BootstrapConfig(300), generator=gen())
        r = _value(s.scores, model="sdm", corruption="mean", statistic="auc")
        width[n] = r.high - r.low
    assert 0 < width[256] < width[16] / 2


def test_class_size_view_finds_the_class_a_model_loses() -> None:
    """Three classes of 60, 30 and 10 pixels per label; under corruption 'sdm' paints the small one as the large."""
    n = 8
    clean = np.zeros((n, 3, 3), np.int64)
    clean[:, 0, 0], clean[:, 1, 1], clean[:, 2, 2] = 60, 30, 10
    lost = clean.copy()
    lost[:, 2, 2], lost[:, 2, 0] = 0, 10
    grid = {"scdm": {("clean", 0.0): clean, ("blobs", 0.5): clean, ("blobs", 1.0): clean},
            "sdm": {("clean", 0.0): clean, ("blobs", 0.5): lost, ("blobs", 1.0): lost}}
    s = graded_summary(grid, baseline="sdm", config=BootstrapConfig(50), generator=gen(), classes=(2, 3, 5),
                       names={2: "building", 3: "sky", 5: "tree"})
    assert dict(zip(s.sizes["size"], s.sizes["classes"])) == {"small": "tree", "medium": "sky", "large": "building"}
    assert _value(s.sizes, model="sdm", size="small", statistic="iou_drop").value == pytest.approx(1.0)
    assert _value(s.sizes, model="sdm", size="medium", statistic="iou_drop").value == pytest.approx(0.0)
    assert _value(s.sizes, model="sdm", size="large", statistic="iou_drop").value == pytest.approx(1 - 60 / 70)
    assert _value(s.sizes, model="scdm", size="small", statistic="iou_drop_diff").value == pytest.approx(-1.0)
    tree = _value(s.classes, model="sdm", class_id=5, statistic="iou_drop")
    assert tree["name"] == "tree (5)" and tree["size"] == "small" and tree["area"] == pytest.approx(0.1)


def test_grid_errors_say_what_is_missing() -> None:
    grid = _grid(10)
    del grid["sdm"][("edge", 1.0)]
    with pytest.raises(ValueError, match=r"model 'sdm' has no cells for edge 1; re-run"):
        grid_layout(grid)
    with pytest.raises(ValueError, match="not a graded grid"):
        graded_summary({m: {k: v for k, v in g.items() if k[1] != 1.0} for m, g in _grid(10).items()},
                       baseline="sdm", config=BootstrapConfig(10))
    with pytest.raises(ValueError, match="baseline 'nope' is not among the models"):
        graded_summary(_grid(10), baseline="nope")


def test_step_budget_rows_match_the_pair_comparison() -> None:
    clean = _confusions(30, 0, 0.1)
    settings = []
    for steps, noise in ((25, 0.3), (5, 0.5)):
        conf = {"scdm": {"clean": clean, "ds 0.4": _confusions(30, 1, noise - 0.1)},
                "sdm": {"clean": clean, "ds 0.4": _confusions(30, 2, noise)}}
        settings.append(({"sampler": "ddim", "steps": steps, "eta": 1.0, "guidance": 1.5}, conf))
    frame = step_budget(settings, "scdm", "sdm", config=BootstrapConfig(200), generator=gen())
    assert list(frame["steps"]) == [5, 25] and set(frame["sampler"]) == {"ddim"}
    row = frame.set_index("steps").loc[25]
    seed = int(torch.randint(0, 2**62, (1,), generator=gen()))
    pair = compare_pair("scdm", "sdm", settings[0][1], BootstrapConfig(200), gen(seed))
    assert (row["delta"], row["low"], row["high"]) == (pair.delta, pair.low, pair.high)
    assert row["low"] <= row["delta"] <= row["high"] and row["clean_a"] == row["clean_b"]
    with pytest.raises(ValueError, match="no sampler setting"):
        step_budget([], "scdm", "sdm")


def test_markdown_and_pictures_are_written(tmp_path: Path) -> None:
    from bench.plots import plot_difference_heatmap, plot_severity_curves, save_figure
    from bench.robustness_report import _figures, graded_markdown, step_budget_markdown

    table = pd.DataFrame([{"model": m, "corruption": c, "severity": v, "seed": 0, "metric": "fd_effnetl0",
                           "value": 100.0 + 10 * v} for m in ("steady", "sdm") for c, v in
                          (("clean", 0.0), ("ds", 0.5), ("ds", 1.0), ("edge", 0.5), ("edge", 1.0))])
    s = graded_summary(_grid(20), baseline="sdm", config=BootstrapConfig(100), generator=gen(), classes=CLASSES,
                       table=table)
    text = graded_markdown(s, ["plots/robustness_heatmap.png"])
    for section in ("## Graded robustness: 2 kinds, 20 labels", "### Overall", "### Robustness AUC per kind",
                    "### AUC difference to `sdm`", "### Corruption error per kind", "### miou against severity",
                    "### fd_effnetl0 against severity", "### Per-class IoU drop", "### IoU drop by class size",
                    "![plots/robustness_heatmap.png]"):
        assert section in text, section
    assert "| steady | " in text and "| mean | 1.000 [1.000, 1.000] |" in text
    assert "| sdm | ds | 100.0 | 105.0 | 110.0 |" in text  # the table's values, no interval
    heat = plot_difference_heatmap(s.curves, "sdm")
    assert any(t.get_text().endswith("*") for t in heat.axes[0].texts)  # a significant cell is marked
    assert save_figure(heat, tmp_path / "heat.png").stat().st_size > 1000
    curves = plot_severity_curves(s.curves, "miou")
    assert [ax.get_title() for ax in curves.axes if ax.get_title()] == ["ds", "edge"]
    assert save_figure(curves, tmp_path / "curves.png").is_file()
    # a statistic scored on clean labels only (the default run's feat_diversity) has no curve against severity
    clean_only = pd.DataFrame([{"model": m, "corruption": "clean", "severity": 0.0, "seed": 0,
                                "metric": "feat_diversity", "value": 0.5} for m in ("steady", "sdm")])
    s2 = graded_summary(_grid(20), baseline="sdm", config=BootstrapConfig(100), generator=gen(), classes=CLASSES,
                        table=pd.concat([table, clean_only], ignore_index=True))
    assert (s2.curves["statistic"] == "feat_diversity").any()
    assert [p.name for p in _figures(s2, tmp_path / "plots")] == [
        "robustness_heatmap.png", "robustness_miou.png", "robustness_fd_effnetl0.png"]
    with pytest.raises(ValueError, match="no corrupted condition has 'feat_diversity'"):
        plot_severity_curves(s2.curves, "feat_diversity")
    frame = step_budget([({"sampler": "ancestral", "steps": 10, "eta": 0.0, "guidance": 1.5}, {
        m: {"clean": _confusions(10, 0, 0.1), "ds 0.4": _confusions(10, 1, 0.3)} for m in ("a", "b")})], "a", "b",
        config=BootstrapConfig(50))
    budget = step_budget_markdown(frame, "a", "b")
    assert "| ancestral | 10 |" in budget and "delta = drop(b) - drop(a)" in budget


# ---------------------------------------------------------------------------------------------- configs

def test_grid_and_step_budget_configs() -> None:
    import noise_sim
    from bench.config import BenchConfig, ModelKind, Sampler, load_config, paper_corruptions, validate
    from scdm.settings import SamplingSettings

    grid = validate(load_config(ROOT / "bench/configs/robustness_grid.toml"))
    assert [c.kind for c in grid.corruptions] == list(noise_sim.KINDS)
    assert all(c.severities == (0.2, 0.4, 0.6, 0.8, 1.0) for c in grid.corruptions)
    assert grid.samplers == (SamplingSettings(),) and grid.diversity_corrupted
    assert [m.name for m in grid.models if m.kind == ModelKind.DIFFUSION] == [
        "embedded-scdm", "embedded-sdm", "embedded-scdm-uniform"]
    assert [m.value for m in grid.metrics] == ["miou", "fd_effnetl0", "feat_diversity"]
    header = (ROOT / "bench/configs/robustness_grid.toml").read_text().split("\n\n")[0]
    assert f"{grid.dataset.world_scenes} labels" in header and "= 54.7 min" in header
    budget = validate(load_config(ROOT / "bench/configs/step_budget.toml"))
    steps = [(s.sampler, s.steps, s.eta) for s in budget.samplers]
    assert steps == [(Sampler.ANCESTRAL, n, None) for n in (5, 10, 20, 50)] + [
        (Sampler.DDIM, n, 1.0) for n in (5, 10, 20, 50)]
    assert [(c.kind, c.severities) for c in budget.corruptions] == [(c.kind, c.severities[:1]) for c in paper_corruptions()]
    default = BenchConfig()  # the default run is unchanged
    assert default.corruptions == paper_corruptions() and default.samplers == (SamplingSettings(Sampler.ANCESTRAL, 25),)
    assert default.dataset.world_scenes == 50 and not default.diversity_corrupted
    assert tomllib.loads((ROOT / "bench/configs/robustness_grid.toml").read_text())["samplers"] == [{}]


# ---------------------------------------------------------------------------------------------- command line

def test_bad_grid_input_fails_before_any_sampling(tmp_path: Path, capsys) -> None:
    from bench.__main__ import main
    from test_cli_errors import one_line_error

    out = tmp_path / "run"
    line = one_line_error(main, ["run", "--out", str(out), "--corruption", "ds", "smudge", "--quiet"], capsys)
    assert "unknown corruption 'smudge'; choose from ['ds', 'edge'" in line
    for bad in ("1.5", "0"):
        line = one_line_error(main, ["run", "--out", str(out), "--corruption", "blobs", "--severities", "0.5", bad,
                                     "--quiet"], capsys)
        assert f"corruption 'blobs': severities must be in (0, 1] (0 is the clean row), got {float(bad)}" in line
    cfg = tmp_path / "grid.toml"
    cfg.write_text('[[corruptions]]\nkind = "warp"\nseverities = [0.2, 1.2]\n')
    assert "corruption 'warp': severities must be in (0, 1]" in one_line_error(
        main, ["run", "--config", str(cfg), "--out", str(out), "--quiet"], capsys)
    assert not out.exists()  # nothing written, nothing sampled


def _table_only_run(tmp_path: Path, rows) -> Path:
    """A run folder with a config and a results table but no samples (enough for the checks before segmenting)."""
    from bench.config import BenchConfig, ModelSpec, config_document
    from bench.report import frame, write_table
    from bench.store import write_json

    run = tmp_path / "run"
    cfg = BenchConfig(models=(ModelSpec("scdm", "embedded-scdm"), ModelSpec("sdm", "embedded-sdm")))
    write_json(run / "config.json", config_document(cfg))
    write_table(frame([{"model": m, "dataset": "embedded", "corruption": c, "severity": s, "seed": 0,
                        "sampler": "ddim", "steps": 15, "guidance": 1.5, "metric": "miou", "value": 0.5, "n": 4}
                       for m, c, s in rows]), run)
    return run


def test_robustness_without_the_needed_cells_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    from bench.__main__ import main
    from test_cli_errors import one_line_error

    assert "is not a bench run folder" in one_line_error(main, ["robustness", str(tmp_path)], capsys)
    run = _table_only_run(tmp_path, [("scdm", "clean", 0.0), ("sdm", "clean", 0.0)])
    assert "models 'scdm' and 'sdm' share no corrupted condition" in one_line_error(main, ["robustness", str(run)],
                                                                                    capsys)
    run = _table_only_run(tmp_path, [("scdm", "ds", 0.4), ("sdm", "ds", 0.4), ("sdm", "clean", 0.0)])
    assert "model 'scdm' has no clean-label samples" in one_line_error(main, ["robustness", str(run)], capsys)
    assert "no mIoU rows for model 'x'" in one_line_error(main, ["robustness", str(run), "--models", "scdm", "x"],
                                                          capsys)
    graded = [(m, c, s) for m in ("scdm", "sdm") for c, s in (("clean", 0.0), ("ds", 0.4), ("ds", 0.8))]
    run = _table_only_run(tmp_path, graded[:-1])  # a graded grid whose sdm lacks ds 0.8
    assert "model 'sdm' has no cells for ds 0.8; re-run" in one_line_error(main, ["robustness", str(run)], capsys)
    run = _table_only_run(tmp_path, graded)
    assert "baseline 'nope' is not a model of the run" in one_line_error(
        main, ["robustness", str(run), "--baseline", "nope"], capsys)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    from scdm.config import LabelSchedule
    from scdm.presets import world_labels
    from scdm.world import CLASS_IDS
    from test_bench_run import _tiny_checkpoint, tiny_segmenter

    d = tmp_path_factory.mktemp("summary_assets")
    return {"scdm": _tiny_checkpoint(d / "tiny-scdm", LabelSchedule.CLASSWISE, world_labels(), 12),
            "sdm": _tiny_checkpoint(d / "tiny-sdm", LabelSchedule.NONE, world_labels(), 12),
            "seg": tiny_segmenter(d / "seg", CLASS_IDS)}


def test_tiny_grid_end_to_end(assets, tmp_path: Path, capsys, one_thread) -> None:
    """2 kinds x 2 severities, tiny models, 4 labels -> `bench robustness` -> robustness.md and the pictures; more
    sampler settings in the same folder -> the step-budget table instead."""
    from bench.__main__ import main
    from bench.config import CorruptionSpec, Metric, ModelSpec, SamplingSettings
    from bench.run import run
    from test_bench_run import tiny_config

    cfg = tiny_config(assets, models=(ModelSpec("scdm", str(assets["scdm"])), ModelSpec("sdm", str(assets["sdm"]))),
                      corruptions=(CorruptionSpec("ds", (0.4, 0.8)), CorruptionSpec("random", (0.2, 0.6))),
                      metrics=(Metric.MIOU,), diversity_labels=0)
    out = tmp_path / "grid"
    run(cfg, out)
    assert main(["robustness", str(out), "--resamples", "50"]) == 0
    printed = capsys.readouterr().out
    text = (out / "robustness.md").read_text()
    assert text in printed and "figure: " in printed
    for section in ("| mean |", "## Graded robustness: 2 kinds, 4 labels", "Baseline `sdm`", "### Overall",
                    "### Robustness AUC per kind", "### AUC difference to `sdm`", "### Corruption error per kind",
                    "### miou against severity", "### Per-class IoU drop", "### IoU drop by class size",
                    "![plots/robustness_heatmap.png](plots/robustness_heatmap.png)"):
        assert section in text, section
    assert "| sdm | " in text and "sky" in text  # class names from the dataset
    for name in ("robustness_heatmap.png", "robustness_miou.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    run(replace(cfg, corruptions=(CorruptionSpec("ds", (0.4,)),), samplers=(SamplingSettings(steps=2),
                                                                           SamplingSettings(steps=3))), out)
    assert main(["robustness", str(out), "--resamples", "20"]) == 0
    text = (out / "robustness.md").read_text()
    assert "## Step budget: scdm vs sdm" in text and "| ancestral | 2 |" in text and "| ancestral | 3 |" in text
    assert "## Graded robustness" not in text
