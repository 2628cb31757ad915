"""Robustness to label noise: each model's mIoU drop from clean labels, and a paired bootstrap over labels.

The drop of model m under condition c is  drop_m(c) = mIoU_m(clean) - mIoU_m(c);  the robustness summary is
its mean over the run's corrupted conditions (SCDM paper, Tab. 1-2: DS, Edge and Random). Two models are
compared through  delta = mean drop_B - mean drop_A  (positive: A loses less). Its uncertainty comes from a
paired bootstrap over labels: every resample draws label indices with replacement, the same indices for
both models and all conditions, and recomputes every mIoU from the summed per-label confusion matrices.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .report import SETTING as SAMPLER_SETTING
from .report import condition_label, read_table, series_labels
from .segmenter import confusion_matrix, ids_to_indices, miou_batch

SETTING = ("model", *SAMPLER_SETTING)


# ---------------------------------------------------------------------------------------------- point estimates

def drops(df: pd.DataFrame, metric: str = "miou") -> pd.DataFrame:
    """drop = clean - corrupted per (model, setting, corruption, severity), seed means; empty without clean rows."""
    sub = df[df["metric"] == metric]
    mean = sub.groupby([*SETTING, "corruption", "severity"], sort=True, dropna=False)["value"].mean().reset_index()
    clean = mean[mean["corruption"] == "clean"][[*SETTING, "value"]].rename(columns={"value": "clean"})
    noisy = mean[mean["corruption"] != "clean"].rename(columns={"value": "corrupted"})
    out = noisy.merge(clean, on=list(SETTING), how="inner")
    out["drop"] = out["clean"] - out["corrupted"]
    return out[[*SETTING, "corruption", "severity", "clean", "corrupted", "drop"]].reset_index(drop=True)


def drop_markdown(df: pd.DataFrame, metric: str = "miou") -> str:
    """A markdown table of drops: rows = model (setting), columns = each corrupted condition and their mean."""
    d = drops(df, metric)
    if d.empty:
        return ""
    d["row"] = series_labels(d)
    d["col"] = [condition_label(c, s) for c, s in zip(d["corruption"], d["severity"])]
    cols = sorted(d["col"].unique())
    lines = [f"**{metric} drop from clean labels** (lower is more robust; mean over the corrupted columns)", "",
             "| model | clean | " + " | ".join(cols) + " | mean drop |", "|---|---|" + "---|" * (len(cols) + 1)]
    for row, g in d.groupby("row", sort=False):
        by = dict(zip(g["col"], g["drop"]))
        cells = [f"{by[c]:.4f}" if c in by else "" for c in cols]
        mean = f"{np.mean(list(by.values())):.4f}" if len(by) == len(cols) else ""  # a partial mean would mislead
        lines.append(f"| {row} | {g['clean'].iloc[0]:.4f} | " + " | ".join(cells) + f" | {mean} |")
    return "\n".join(lines) + "\n"


def drop_summary(df: pd.DataFrame) -> str:
    """The run summary's robustness section: the mIoU drop table and how to get its bootstrap interval ("" without
    mIoU rows or clean cells)."""
    drop = drop_markdown(df) if "miou" in set(df["metric"]) else ""
    if drop:
        drop += ("\nA paired bootstrap interval for the difference of two models' mean drops: "
                 "`python -m bench robustness RUN`.\n")
    return drop


# ---------------------------------------------------------------------------------------------- bootstrap

@dataclass(frozen=True)
class BootstrapConfig:
    """Paired bootstrap over labels (Efron & Tibshirani 1993, percentile interval)."""

    resamples: int = 2000
    confidence: float = 0.95


@dataclass(frozen=True)
class PairResult:
    """delta = mean drop of B - mean drop of A over `conditions`, with its bootstrap interval."""

    a: str
    b: str
    conditions: tuple[str, ...]
    drop_a: tuple[float, ...]  # per condition, on all labels
    drop_b: tuple[float, ...]
    mean_drop_a: float
    mean_drop_b: float
    delta: float
    low: float
    high: float
    p_not_better: float  # fraction of resamples with delta <= 0 (A not more robust than B)
    labels: int
    resamples: int
    confidence: float


def bootstrap_weights(n: int, config: BootstrapConfig, generator: torch.Generator) -> np.ndarray:
    """(R, N) multiplicities of N units (labels) in R resamples drawn with replacement; reuse one draw for every
    model and condition that should be paired."""
    if config.resamples < 1 or not 0 < config.confidence < 1:
        raise ValueError(f"need resamples >= 1 and 0 < confidence < 1, got {config}")
    if n < 1:
        raise ValueError("no labels to resample: the run has no scored labels")
    idx = torch.randint(0, n, (config.resamples, n), generator=generator).numpy()
    return np.stack([np.bincount(row, minlength=n) for row in idx]).astype(np.float64)


def resampled_confusions(w: np.ndarray, cms: np.ndarray) -> np.ndarray:
    """(R, K, K) confusion of each resample from multiplicities w (R, N) and per-label confusions (N, K, K)."""
    return (w @ cms.reshape(cms.shape[0], -1)).reshape(-1, *cms.shape[1:])


def paired_bootstrap(clean_a: np.ndarray, noisy_a: Sequence[np.ndarray], clean_b: np.ndarray,
                     noisy_b: Sequence[np.ndarray], config: BootstrapConfig, generator: torch.Generator
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resampled mean drops of A and B and their delta, each (R,), from per-label (N, K, K) confusion matrices.

    Condition j of A is paired with condition j of B; all share the labels' resampled indices.
    """
    n = clean_a.shape[0]
    if not noisy_a or len(noisy_a) != len(noisy_b):
        raise ValueError(f"need the same, non-zero number of corrupted conditions for A and B, "
                         f"got {len(noisy_a)} and {len(noisy_b)}")
    for x in (clean_b, *noisy_a, *noisy_b):
        if x.shape[0] != n:
            raise ValueError(f"every condition needs the same {n} labels, got {x.shape[0]}")
    w = bootstrap_weights(n, config, generator)  # (R, N)

    def mean_drop(clean: np.ndarray, noisy: Sequence[np.ndarray]) -> np.ndarray:
        m = lambda c: miou_batch(resampled_confusions(w, c))  # noqa: E731
        base = m(clean)
        return np.mean([base - m(c) for c in noisy], axis=0)

    da, db = mean_drop(clean_a, noisy_a), mean_drop(clean_b, noisy_b)
    return da, db, db - da


def compare_pair(a: str, b: str, confusions: Mapping[str, Mapping[str, np.ndarray]], config: BootstrapConfig,
                 generator: torch.Generator) -> PairResult:
    """PairResult of models `a` and `b` from {model: {condition name: (N, K, K)}} with a "clean" entry each."""
    for m in (a, b):
        if "clean" not in confusions.get(m, {}):
            raise ValueError(f"model {m!r} has no clean-label samples to measure a drop from")
    conds = tuple(c for c in confusions[a] if c != "clean" and c in confusions[b])
    if not conds:
        raise ValueError(f"models {a!r} and {b!r} share no corrupted condition")
    ca, cb = confusions[a], confusions[b]
    da, db, delta = paired_bootstrap(ca["clean"], [ca[c] for c in conds], cb["clean"], [cb[c] for c in conds],
                                     config, generator)
    drop = lambda cm: [float(miou_batch(cm["clean"].sum(0)) - miou_batch(cm[c].sum(0))) for c in conds]  # noqa: E731
    drop_a, drop_b = drop(ca), drop(cb)
    alpha = (1 - config.confidence) / 2
    return PairResult(a, b, conds, tuple(drop_a), tuple(drop_b), float(np.mean(drop_a)), float(np.mean(drop_b)),
                      float(np.mean(drop_b) - np.mean(drop_a)), float(np.quantile(delta, alpha)),
                      float(np.quantile(delta, 1 - alpha)), float(np.mean(delta <= 0)), int(ca["clean"].shape[0]),
                      config.resamples, config.confidence)


def pair_markdown(r: PairResult) -> str:
    """The comparison as a small markdown table plus one sentence."""
    pct = f"{100 * r.confidence:g}%"
    lines = [f"**Paired bootstrap over {r.labels} labels, {r.resamples} resamples**: mIoU drop from clean labels", "",
             "| condition | " + f"{r.a} | {r.b} | {r.b} - {r.a} |", "|---|---|---|---|"]
    lines += [f"| {c} | {x:.4f} | {y:.4f} | {y - x:+.4f} |" for c, x, y in zip(r.conditions, r.drop_a, r.drop_b)]
    lines.append(f"| mean | {r.mean_drop_a:.4f} | {r.mean_drop_b:.4f} | {r.delta:+.4f} [{r.low:+.4f}, {r.high:+.4f}] |")
    lines += ["", f"delta = mean drop of {r.b} - mean drop of {r.a} = {r.delta:+.4f}, {pct} interval "
              f"[{r.low:+.4f}, {r.high:+.4f}]; {r.a} loses less in {100 * (1 - r.p_not_better):.1f}% of resamples."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- run folders

@dataclass(frozen=True)
class LabelConfusions:
    """Per-label confusion matrices of a run's cells, over the segmenter's classes."""

    classes: tuple[int, ...]  # raw id of each matrix row/column (the segmenter's outputs)
    names: dict[int, str]  # raw id -> the segmenter's class name, where it has names
    # (model, setting folder) -> (corruption, severity) -> (N * seeds, K, K); clean is ("clean", 0.0)
    cells: dict[tuple[str, str], dict[tuple[str, float], np.ndarray]]


def setting_folders(df: pd.DataFrame, model: str) -> dict[str, dict]:
    """{setting folder: setting columns} of a model's mIoU rows in a run's table (ValueError when it has none)."""
    rows = df[(df["model"] == model) & (df["metric"] == "miou")]
    if rows.empty:
        raise ValueError(f"the run has no mIoU rows for model {model!r}; models: {sorted(df['model'].unique())}")
    records = rows[list(SAMPLER_SETTING)].drop_duplicates().to_dict("records")
    return {table_setting_folder(r): r for r in records}


def run_confusions(run: str | Path, models: Sequence[str], *, setting: str | None = None,
                   device: str | None = None, batch_size: int = 64) -> dict[str, dict[str, np.ndarray]]:
    """{model: {condition: (N * seeds, K, K)}} for a finished run folder, segmenting its saved samples again.

    Seeds are stacked along the label axis (a unit is a label under one seed). `setting` picks one sampler
    setting by its folder name (e.g. "ancestral_25steps_g1.5_fp32-1f0c9a2e") when a model was run with several.
    """
    df = read_table(run)
    cells = []
    for model in models:
        have = sorted(setting_folders(df, model))
        if (setting is None and len(have) != 1) or (setting is not None and setting not in have):
            raise ValueError(f"model {model!r} has settings {have} in {run}; pick one with setting=")
        cells.append((model, setting or have[0]))
    got = load_confusions(run, cells, device=device, batch_size=batch_size).cells
    return {m: {condition_label(c, s): cms for (c, s), cms in got[(m, f)].items()} for m, f in cells}


def load_confusions(run: str | Path, cells: Sequence[tuple[str, str]], *, device: str | None = None,
                    batch_size: int = 64) -> LabelConfusions:
    """Per-label confusions of each (model, setting folder) in `cells`: every condition of the run's table with
    all seeds present, from the saved samples segmented again by the run's mIoU segmenter (loaded once)."""
    from .config import load_config
    from .scoring import plan_metrics
    from .segmenter import load_segmenter
    from .store import CLEAN, Condition, label_path, read_label_png, read_png, setting_dir

    run = Path(run)
    config = load_config(run / "config.json")
    df = read_table(run)
    segmenter_source = plan_metrics(config).segmenter
    if segmenter_source is None:
        raise ValueError(f"{run} has no mIoU segmenter (its config has none and the dataset no default)")
    segmenter = load_segmenter(segmenter_source, device=device)
    classes = segmenter.classes
    names = dict(zip(classes, segmenter.class_names)) if len(segmenter.class_names) == len(classes) else {}
    labels: dict[int, np.ndarray] = {}
    out: dict[tuple[str, str], dict[tuple[str, float], np.ndarray]] = {}
    for model, chosen in cells:
        rows = df[(df["model"] == model) & (df["metric"] == "miou")]
        rows = rows[[table_setting_folder(r) == chosen for r in rows[list(SAMPLER_SETTING)].to_dict("records")]]
        per_seed: dict[tuple[str, float], list[np.ndarray]] = {}
        for seed in config.seeds:
            for _, r in rows[rows["seed"] == seed].drop_duplicates(["corruption", "severity"]).iterrows():
                cond = Condition(r["corruption"], float(r["severity"]), int(seed))
                n = int(r["n"]) // config.samples
                if len(labels) < n:
                    labels.update({i: read_label_png(label_path(run, Condition(CLEAN, 0.0, 0), i))
                                   for i in range(len(labels), n)})
                where = setting_dir(run, model, chosen) / cond.folder
                paths = [where / f"{i:05d}_{j}.png" for i in range(n) for j in range(config.samples)]
                missing = [p for p in paths if not p.is_file()]
                if missing:
                    raise ValueError(f"{len(missing)} samples of {model} are missing (e.g. {missing[0]}); "
                                     f"re-run `python -m bench run` into {run} to finish them")
                images = np.stack([read_png(p) for p in paths])
                target = np.repeat(np.stack([labels[i] for i in range(n)]), config.samples, axis=0)
                pred = segmenter.predict(images, batch_size=batch_size)
                cms = confusion_matrix(ids_to_indices(pred, classes), ids_to_indices(target, classes), len(classes),
                                       per_image=True)  # (N * samples, K, K); target ids outside `classes` ignored
                cms = cms.reshape(n, config.samples, *cms.shape[1:]).sum(1)  # a label's samples count together
                key = (CLEAN, 0.0) if cond.is_clean else (cond.corruption, cond.severity)
                per_seed.setdefault(key, []).append(cms)
        out[(model, chosen)] = {k: np.concatenate(v) for k, v in per_seed.items() if len(v) == len(config.seeds)}
    return LabelConfusions(tuple(classes), names, out)


def table_setting_folder(columns: dict) -> str:
    """The setting folder of a table row's setting columns (`store.setting_folder`; older tables: the folder
    name the bench used before it recorded the whole setting)."""
    from scdm.settings import SamplingSettings

    from .store import REFERENCE_SETTING, setting_folder

    c = columns
    if c["sampler"] == REFERENCE_SETTING:
        return REFERENCE_SETTING
    if c["precision"] == "":  # written before the precision column existed
        return f"{c['sampler']}_{c['steps']}steps_g{c['guidance']:g}" + (f"_eta{c['eta']:g}" if c["eta"] else "")
    return setting_folder(SamplingSettings(
        sampler=c["sampler"], steps=int(c["steps"]), spacing=c["spacing"], guidance=float(c["guidance"]),
        extrapolation=float(c["extrapolation"]), dynamic_threshold=float(c["dynamic_threshold"]), eta=float(c["eta"]),
        precision=c["precision"], label_diffusion=bool(c["label_diffusion"])))
