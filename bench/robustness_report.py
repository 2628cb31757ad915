"""`RUN/robustness.md` and its figures: the sections a run folder supports, from its re-segmented samples.

- Pair: two models' mean mIoU drop from clean labels with a paired bootstrap (`bench.robustness.pair_markdown`),
  when each has one sampler setting (or `setting` picks one).
- Step budget: the same comparison per sampler setting (`bench.summary.step_budget`), when the two models were
  run with several settings (bench/configs/step_budget.toml).
- Graded: AUC, CE / mCE, mIoU against severity and the class view (`bench.summary.graded_summary`) with
  plots/robustness_*.png, when every corruption kind has two or more severities and each model one sampler setting
  (bench/configs/robustness_grid.toml).

Every needed cell is checked in the run's table before any image is segmented again, so a run that lacks them
fails at once with one line saying what to run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from scdm.files import atomic_write_text

from .report import condition_label, read_table
from .robustness import (SAMPLER_SETTING, BootstrapConfig, compare_pair, load_confusions, pair_markdown,
                         setting_folders, table_setting_folder)
from .summary import (CLEAN_KEY, TABLE_METRICS, GradedSummary, default_baseline, graded_summary, grid_layout,
                      is_graded, step_budget)

REPORT_NAME = "robustness.md"


@dataclass(frozen=True)
class RobustnessReport:
    """What `write_robustness` wrote and computed."""

    path: Path  # RUN/robustness.md
    text: str
    figures: tuple[Path, ...]  # plots/robustness_*.png of a graded grid
    graded: GradedSummary | None  # None unless the run is a graded grid
    budget: pd.DataFrame | None  # the step-budget rows, None unless the models have several settings


# ---------------------------------------------------------------------------------------------- run folder

def _rows(df: pd.DataFrame, model: str, folder: str) -> pd.DataFrame:
    """A model's table rows under one setting folder."""
    rows = df[df["model"] == model]
    return rows[[table_setting_folder(r) == folder for r in rows[list(SAMPLER_SETTING)].to_dict("records")]]


def _conditions(df: pd.DataFrame, model: str, folder: str) -> set[tuple[str, float]]:
    """(corruption, severity) of a model's mIoU cells under one setting folder; clean is ("clean", 0.0)."""
    rows = _rows(df[df["metric"] == "miou"], model, folder)
    return {(c, 0.0 if c == CLEAN_KEY[0] else float(s)) for c, s in zip(rows["corruption"], rows["severity"])}


def _check_pair(df: pd.DataFrame, a: tuple[str, str], b: tuple[str, str]) -> None:
    """Both cells have clean labels and share a corrupted condition, else ValueError (before any segmenting)."""
    for model, folder in (a, b):
        if CLEAN_KEY not in _conditions(df, model, folder):
            raise ValueError(f"model {model!r} has no clean-label samples to measure a drop from; run the bench "
                             f"with `clean = true`")
    if len((_conditions(df, *a) & _conditions(df, *b)) - {CLEAN_KEY}) == 0:
        raise ValueError(f"models {a[0]!r} and {b[0]!r} share no corrupted condition; run both on the same corruptions")


def _matched_settings(df: pd.DataFrame, a: str, b: str) -> list[tuple[dict, str, str]]:
    """(setting columns, folder of a, folder of b) of the settings both models ran, matched on every setting
    column but label_diffusion (on for SCDM, off for SDM)."""
    key = lambda cols: tuple(cols[c] for c in SAMPLER_SETTING if c != "label_diffusion")  # noqa: E731
    fb = {key(cols): folder for folder, cols in setting_folders(df, b).items()}
    return [(cols, folder, fb[key(cols)]) for folder, cols in setting_folders(df, a).items() if key(cols) in fb]


def _graded_cells(df: pd.DataFrame, models: Sequence[str], setting: str | None) -> dict[str, str]:
    """{model: setting folder} of the diffusion models that have one setting (or `setting`) in the table."""
    cells = {}
    for m in models:
        have = setting_folders(df, m) if ((df["model"] == m) & (df["metric"] == "miou")).any() else {}
        if setting in have:
            cells[m] = setting
        elif len(have) == 1:
            cells[m] = next(iter(have))
    return cells


def _graded_plan(df: pd.DataFrame, models: Sequence[str], setting: str | None, baseline: str | None,
                 fallback: str) -> tuple[dict[str, str], str | None]:
    """({model: setting folder}, baseline) of a graded grid (every kind at two or more severities); ({}, None) when
    the run is not one. Every model must have every cell of the grid, clean included (ValueError naming the gaps)."""
    cells = _graded_cells(df, models, setting)
    keys = {m: _conditions(df, m, f) for m, f in cells.items()}
    seen = set().union(*keys.values()) - {CLEAN_KEY}
    if not is_graded({kind: [s for k, s in seen if k == kind] for kind, _ in seen}):
        return {}, None
    grid_layout(keys)
    baseline = baseline or default_baseline(list(cells)) or fallback
    if baseline not in cells:
        raise ValueError(f"baseline {baseline!r} is not a model of the run with one sampler setting; choose from "
                         f"{sorted(cells)}")
    return cells, baseline


def write_robustness(run: str | Path, *, models: Sequence[str] | None = None, baseline: str | None = None,
                     setting: str | None = None, config: BootstrapConfig = BootstrapConfig(), seed: int = 0,
                     device: str | None = None, batch_size: int = 64, figures: bool = True) -> RobustnessReport:
    """Write RUN/robustness.md (and plots/robustness_*.png for a graded grid) from a finished run folder.

    `models` = the pair (A, B), default the run's first two diffusion models, delta = drop(B) - drop(A);
    `baseline` = the graded grid's CE reference, default the model named "...sdm" (not "scdm"), else B.
    """
    from .config import load_config
    from .datasets import class_names, encoding_kind

    run = Path(run)
    if not (run / "config.json").is_file():
        raise ValueError(f"{run} is not a bench run folder (no config.json)")
    bench = load_config(run / "config.json")
    df = read_table(run)
    diffusion = [m.name for m in bench.models if m.kind.generative]  # diffusion models and plug-ins
    pair = list(models) if models else diffusion[:2]
    if len(pair) != 2:
        raise ValueError(f"need two diffusion models to compare, got {pair}; pass --models A B")
    folders = {m: setting_folders(df, m) for m in pair}
    if setting is not None:
        for m, have in folders.items():
            if setting not in have:
                raise ValueError(f"model {m!r} has no setting {setting!r} in {run}; it has {sorted(have)}")
    budget = setting is None and any(len(have) > 1 for have in folders.values())
    if budget:
        matched = _matched_settings(df, *pair)
        if not matched:
            raise ValueError(f"models {pair[0]!r} and {pair[1]!r} share no sampler setting in {run}; run both with "
                             f"the same [[samplers]]")
        for _, fa, fb in matched:
            _check_pair(df, (pair[0], fa), (pair[1], fb))
        cells = [(m, f) for _, fa, fb in matched for m, f in zip(pair, (fa, fb))]
        graded_cells: dict[str, str] = {}
    else:
        pair_cells = [(m, setting or next(iter(folders[m]))) for m in pair]
        _check_pair(df, *pair_cells)
        graded_cells, baseline = _graded_plan(df, dict.fromkeys([*pair, *diffusion]), setting, baseline, pair[1])
        cells = list(dict.fromkeys([*pair_cells, *graded_cells.items()]))
    confusions = load_confusions(run, cells, device=device, batch_size=batch_size)
    named = lambda cell: {condition_label(c, s): x for (c, s), x in confusions.cells[cell].items()}  # noqa: E731
    sections: list[str] = []
    frame = graded = None
    if budget:
        settings = [(cols, {pair[0]: named((pair[0], fa)), pair[1]: named((pair[1], fb))}) for cols, fa, fb in matched]
        frame = step_budget(settings, *pair, config=config, generator=torch.Generator().manual_seed(seed))
        sections.append(step_budget_markdown(frame, *pair, config.confidence))
    else:
        result = compare_pair(pair[0], pair[1], {m: named((m, f)) for m, f in pair_cells}, config,
                              torch.Generator().manual_seed(seed))
        sections.append(pair_markdown(result))
    paths: list[Path] = []
    if graded_cells:
        table = pd.concat([_rows(df, m, f) for m, f in graded_cells.items()])
        names = class_names(encoding_kind(bench.dataset), (), confusions.names)
        graded = graded_summary({m: confusions.cells[(m, f)] for m, f in graded_cells.items()}, baseline=baseline,
                                config=config, generator=torch.Generator().manual_seed(seed), table=table,
                                classes=confusions.classes, names=names)
        paths = _figures(graded, run / "plots") if figures else []
        sections.append(graded_markdown(graded, [str(p.relative_to(run)) for p in paths]))
    text = "\n".join(sections)
    path = atomic_write_text(run / REPORT_NAME, text)
    return RobustnessReport(path, text, tuple(paths), graded, frame)


def _figures(s: GradedSummary, out: Path) -> list[Path]:
    """plots/robustness_heatmap.png (mIoU difference to the baseline) and robustness_<statistic>.png curves."""
    import matplotlib.pyplot as plt

    from .plots import plot_difference_heatmap, plot_severity_curves, save_figure

    paths = []
    drawings = [("robustness_heatmap.png", lambda: plot_difference_heatmap(s.curves, s.baseline))]
    corrupted = s.curves[s.curves["corruption"] != "clean"]  # a statistic scored on clean labels only has no curve
    drawings += [(f"robustness_{stat}.png", lambda stat=stat: plot_severity_curves(s.curves, stat))
                 for stat in ("miou", *TABLE_METRICS) if (corrupted["statistic"] == stat).any()]
    for name, draw in drawings:
        if name == "robustness_heatmap.png" and len(s.models) < 2:
            continue
        fig = draw()
        paths.append(save_figure(fig, out / name))
        plt.close(fig)
    return paths


# ---------------------------------------------------------------------------------------------- markdown

def _ci(value: float, low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    """'0.912 [0.901, 0.925]'; '+0.012 [-0.003, +0.027]' when `signed`; a bare value without an interval."""
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    if np.isnan(low) or np.isnan(high):
        return f.format(value)
    return f"{f.format(value)} [{f.format(low)}, {f.format(high)}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def graded_markdown(s: GradedSummary, figures: Sequence[str] = ()) -> str:
    """robustness.md's graded sections: overall scores, AUC, AUC difference, CE, mIoU by severity, class view."""
    pct = f"{100 * s.confidence:g}%"
    others = [m for m in s.models if m != s.baseline]

    def get(frame: pd.DataFrame, signed: bool = False, digits: int = 3, **key) -> str:
        hit = frame.loc[np.logical_and.reduce([frame[k] == v for k, v in key.items()])]
        return _ci(*hit[["value", "low", "high"]].iloc[0], digits=digits, signed=signed) if len(hit) else ""

    sev = {k: sorted(set(s.curves[(s.curves["corruption"] == k)]["severity"])) for k in s.kinds}
    lines = [f"## Graded robustness: {len(s.kinds)} kinds, {s.labels} labels", "",
             f"Severities per kind: {'; '.join(f'{k} ' + ', '.join(f'{x:g}' for x in v) for k, v in sev.items())}. "
             f"Baseline `{s.baseline}`. Intervals: {pct} paired bootstrap over the {s.labels} labels "
             f"({s.resamples} resamples, the same draw for every model and condition).", "",
             "- **AUC** = area under mIoU against severity over [0, s_1..s_J] (0 = clean, trapezoid) / (clean mIoU "
             "x s_J): 1 = no degradation.",
             f"- **CE** = sum over severities of (1 - mIoU) / the same sum for `{s.baseline}`; **mCE** = mean over "
             f"kinds (`{s.baseline}` = 1, lower is better).",
             "- **IoU drop** of a class = clean IoU - mean IoU over every corrupted condition of the grid.", "",
             "### Overall", ""]
    lines += _table(["model", "clean mIoU", "mean AUC", "mCE"],
                    [[m, get(s.curves, model=m, corruption="clean", statistic="miou"),
                      get(s.scores, model=m, corruption="mean", statistic="auc"),
                      get(s.scores, model=m, corruption="mean", statistic="ce")] for m in s.models])
    for stat, title, signed in (("auc", "Robustness AUC per kind (1 = no degradation)", False),
                                ("auc_diff", f"AUC difference to `{s.baseline}` (positive: more robust)", True),
                                ("ce", f"Corruption error per kind (`{s.baseline}` = 1; last row: mCE)", False)):
        cols = others if stat == "auc_diff" else list(s.models)
        if not cols:
            continue
        head = [f"{m} - {s.baseline}" for m in cols] if stat == "auc_diff" else cols
        rows = [[k] + [get(s.scores, signed, model=m, corruption=k, statistic=stat) for m in cols]
                for k in (*s.kinds, "mean")]
        lines += ["", f"### {title}", ""] + _table(["kind", *head], rows)
    for stat in ("miou", *TABLE_METRICS):
        sub = s.curves[s.curves["statistic"] == stat]
        if sub.empty:
            continue
        width, digits = max(len(v) for v in sev.values()), 1 if stat in ("fd_effnetl0", "fid") else 3
        rows = [[m, k, get(sub, model=m, corruption="clean", digits=digits)]
                + [get(sub, model=m, corruption=k, severity=x, digits=digits) for x in sev[k]]
                + [""] * (width - len(sev[k])) for k in s.kinds for m in s.models]
        lines += ["", f"### {stat} against severity" + (" (no interval: not a per-label score)" if stat != "miou"
                                                         else ""), ""]
        lines += _table(["model", "kind", "clean", *[f"s{j + 1}" for j in range(width)]], rows)
    lines += ["", "### Per-class IoU drop (clean - mean over the grid's corrupted conditions)", ""]
    cls = s.classes[s.classes["model"] == s.baseline].drop_duplicates("class_id").sort_values("area")
    lines += _table(["class", "mean area", "size", *s.models, *[f"{m} - {s.baseline}" for m in others]],
                    [[r.name, f"{r.area:.3f}", r.size]
                     + [get(s.classes, model=m, class_id=r.class_id, statistic="iou_drop") for m in s.models]
                     + [get(s.classes, True, model=m, class_id=r.class_id, statistic="iou_drop_diff") for m in others]
                     for r in cls.itertuples(index=False)])
    lines += ["", "### IoU drop by class size (tertiles of mean area over the classes present; mean over a group's "
              "classes)", ""]
    groups = s.sizes[s.sizes["model"] == s.baseline].drop_duplicates("size")
    lines += _table(["size", "classes", *s.models, *[f"{m} - {s.baseline}" for m in others]],
                    [[r.size, r.classes] + [get(s.sizes, model=m, size=r.size, statistic="iou_drop") for m in s.models]
                     + [get(s.sizes, True, model=m, size=r.size, statistic="iou_drop_diff") for m in others]
                     for r in groups.itertuples(index=False)])
    lines += [""] + [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def step_budget_markdown(frame: pd.DataFrame, a: str, b: str, confidence: float = 0.95) -> str:
    """robustness.md's step-budget table: rows = sampler x steps, delta = mean drop of b - mean drop of a."""
    lines = [f"## Step budget: {a} vs {b}", "",
             f"Mean mIoU drop from clean labels over {frame['conditions'].iloc[0]} ({int(frame['labels'].iloc[0])} "
             f"labels); delta = drop({b}) - drop({a}), positive: {a} loses less; {100 * confidence:g}% paired "
             "bootstrap interval (the same resamples in every row). Evaluations = denoiser calls = steps.", ""]
    lines += _table(["sampler", "evaluations", f"{a} clean", f"{b} clean", f"{a} drop", f"{b} drop", "delta"],
                    [[r.sampler + (f" (eta {r.eta:g})" if r.eta else ""), str(int(r.steps)), f"{r.clean_a:.3f}",
                      f"{r.clean_b:.3f}", f"{r.drop_a:.3f}", f"{r.drop_b:.3f}", _ci(r.delta, r.low, r.high, signed=True)]
                     for r in frame.itertuples(index=False)])
    return "\n".join(lines) + "\n"
