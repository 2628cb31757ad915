"""Graded robustness, ImageNet-C style (Hendrycks & Dietterich 2019): summary scores over kinds x severities.

Notation: model m, corruption kind k, severities 0 = s_0 < s_1 < ... < s_J <= 1 (s_0: the clean labels),
u_m(k, s) = mIoU of m's samples of labels corrupted by k at s, scored against the clean labels.

    AUC_m(k)  = trapezoid of u_m(k, s_j) over s_0..s_J / (u_m(clean) * s_J)        1 = no degradation
    CE_m(k)   = sum_j (1 - u_m(k, s_j)) / sum_j (1 - u_base(k, s_j)), j >= 1        the baseline scores 1
    mCE_m     = mean_k CE_m(k);   overall AUC_m = mean_k AUC_m(k)
    drop_m(c) = IoU_m(c, clean) - mean over the grid's corrupted conditions of IoU_m(c, k, s)   per class c

Every number gets a percentile interval from the paired bootstrap of `bench.robustness`: each resample draws
label indices once (a unit is a label under one seed) and applies them to every model and condition, so
differences between models keep their pairing. Class sizes (small / medium / large: tertiles, over the classes
present, of the mean fraction of a clean label's scored pixels the class covers) are fixed on all labels.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Collection, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from noise_sim import KINDS

from .datasets import class_label
from .robustness import BootstrapConfig, bootstrap_weights, compare_pair

Grid = Mapping[str, Mapping[tuple[str, float], np.ndarray]]  # {model: {(corruption, severity): (N, K, K)}}
CLEAN_KEY = ("clean", 0.0)
SIZES = ("small", "medium", "large")
# table metrics shown against severity as they are (no per-label split, so no interval); feat_diversity with
# `diversity_corrupted = true` is the diversity under noise
TABLE_METRICS = ("fd_effnetl0", "fid", "feat_diversity")
COLUMNS = ("statistic", "value", "low", "high")


# ---------------------------------------------------------------------------------------------- scores

def default_baseline(models: Sequence[str]) -> str | None:
    """The one model whose name contains "sdm" but not "scdm" (the SDM of the comparison); None unless exactly one."""
    hits = [m for m in models if "sdm" in m.lower() and "scdm" not in m.lower()]
    return hits[0] if len(hits) == 1 else None


def robustness_auc(clean: np.ndarray, mious: np.ndarray, severities: Sequence[float]) -> np.ndarray:
    """AUC_m(k): clean (...,) and mious (..., J) at `severities` s_1 < ... < s_J -> (...,); 1 = no degradation."""
    x = np.asarray([0.0, *severities])
    y = np.concatenate([np.asarray(clean)[..., None], mious], axis=-1)  # (..., J + 1)
    area = ((x[1:] - x[:-1]) * (y[..., 1:] + y[..., :-1]) / 2).sum(-1)
    return area / (np.asarray(clean) * x[-1])


def corruption_error(mious: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """CE_m(k) = sum_j (1 - u_m) / sum_j (1 - u_base) over the last (severity) axis."""
    return (1 - np.asarray(mious)).sum(-1) / (1 - np.asarray(baseline)).sum(-1)


def class_areas(clean: np.ndarray) -> np.ndarray:
    """(K,) mean fraction of a label's scored pixels each class covers, from (N, K, K) clean confusions (rows = target)."""
    pixels = clean.sum(-1).astype(np.float64)  # (N, K) target pixels per label
    total = pixels.sum(-1, keepdims=True)
    return (pixels / np.maximum(total, 1)).mean(0)


def size_groups(areas: np.ndarray) -> np.ndarray:
    """'small' / 'medium' / 'large' per class: tertiles of `areas` over the classes with area > 0 ('' for absent)."""
    areas = np.asarray(areas, np.float64)
    out = np.full(areas.shape, "", dtype=object)
    present = np.flatnonzero(areas > 0)
    ranked = present[np.argsort(areas[present], kind="stable")]
    for name, part in zip(SIZES, np.array_split(ranked, len(SIZES))):
        out[part] = name
    return out


def resampled_iou(w: np.ndarray, cms: np.ndarray) -> np.ndarray:
    """(R, K) per-class IoU of each resample's summed confusion (linear in w: no (R, K, K) array); NaN = empty union."""
    tp = w @ np.diagonal(cms, axis1=1, axis2=2)  # (R, K)
    union = w @ cms.sum(2) + w @ cms.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(iou: np.ndarray) -> np.ndarray:
    """mIoU over the last axis, skipping NaN classes (`segmenter.miou_batch`); NaN when none is present."""
    present = np.isfinite(iou).sum(-1)
    with np.errstate(invalid="ignore"):
        return np.where(present > 0, np.nansum(iou, -1) / np.maximum(present, 1), np.nan)


# ---------------------------------------------------------------------------------------------- graded summary

@dataclass(frozen=True)
class GradedSummary:
    """What robustness.md shows about a graded grid: long-format frames, each row a statistic with its interval."""

    models: tuple[str, ...]
    baseline: str
    kinds: tuple[str, ...]
    curves: pd.DataFrame  # model, corruption, severity, statistic (miou, miou_diff, a distance), value, low, high
    scores: pd.DataFrame  # model, corruption (a kind or "mean"), statistic (auc, auc_diff, ce), value, low, high
    classes: pd.DataFrame  # model, class_id, name, area, size, statistic (iou_clean, iou_drop, iou_drop_diff), ...
    sizes: pd.DataFrame  # model, size, classes, statistic (iou_drop, iou_drop_diff), value, low, high
    labels: int
    resamples: int
    confidence: float


def grid_layout(grid: Mapping[str, Collection[tuple[str, float]]]) -> dict[str, tuple[float, ...]]:
    """{kind: sorted severities} of a grid's (or any {model: condition keys}) corrupted cells, shared by every
    model; ValueError naming what a model lacks."""
    if not grid:
        raise ValueError("no models to summarise")
    wanted = sorted({key for g in grid.values() for key in g})
    for model, g in grid.items():
        missing = [f"{c} {s:g}" if c != "clean" else c for c, s in wanted if (c, s) not in g]
        if missing:
            raise ValueError(f"model {model!r} has no cells for {', '.join(missing[:6])}; re-run `python -m bench run` "
                             f"into the same folder with every model, or leave the model out")
    kinds: dict[str, list[float]] = {}
    for c, s in wanted:
        if (c, s) != CLEAN_KEY:
            kinds.setdefault(c, []).append(s)
    order = sorted(kinds, key=lambda k: (KINDS.index(k) if k in KINDS else len(KINDS), k))  # the paper's kinds first
    return {k: tuple(sorted(kinds[k])) for k in order}


def is_graded(layout: Mapping[str, Sequence[float]]) -> bool:
    """A graded grid: at least one kind, each with two or more severities."""
    return bool(layout) and all(len(v) >= 2 for v in layout.values())


def graded_summary(grid: Grid, *, baseline: str, config: BootstrapConfig = BootstrapConfig(),
                   generator: torch.Generator | None = None, table: pd.DataFrame | None = None,
                   classes: Sequence[int] | None = None, names: Mapping[int, str] | None = None) -> GradedSummary:
    """The graded scores of every model in `grid` against `baseline`, with paired-bootstrap intervals.

    `table` (model, corruption, severity, metric, value rows of the same cells) adds TABLE_METRICS against
    severity; `classes` are the raw ids of the matrices' axes and `names` their class names.
    """
    if baseline not in grid:
        raise ValueError(f"baseline {baseline!r} is not among the models {list(grid)}; pick one with --baseline")
    layout = grid_layout(grid)
    if CLEAN_KEY not in grid[baseline]:
        raise ValueError("the grid has no clean-label cells: graded scores are relative to clean labels; "
                         "run the bench with `clean = true`")
    if not is_graded(layout):
        raise ValueError(f"not a graded grid (two or more severities per kind): {layout}")
    n = grid[baseline][CLEAN_KEY].shape[0]
    for model, g in grid.items():
        if any(x.shape[0] != n for x in g.values()):
            raise ValueError(f"model {model!r}: every cell needs the same {n} labels")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    w = np.vstack([np.ones((1, n)), bootstrap_weights(n, config, generator)])  # (1 + R, N): row 0 = all labels
    iou = {m: {key: resampled_iou(w, cms) for key, cms in g.items()} for m, g in grid.items()}  # (1 + R, K) each
    u = {m: {key: mean_iou(x) for key, x in g.items()} for m, g in iou.items()}  # (1 + R,) each
    alpha = (1 - config.confidence) / 2
    models, kinds = tuple(grid), tuple(layout)

    def row(x: np.ndarray, **key) -> dict:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN resample column: NaN bounds
            low, high = np.nanquantile(x[1:], [alpha, 1 - alpha])
        return {**key, "value": float(x[0]), "low": float(low), "high": float(high)}

    curves, scores = [], []
    auc: dict[str, dict[str, np.ndarray]] = {}
    ce: dict[str, dict[str, np.ndarray]] = {}
    for m in models:
        curves.append(row(u[m][CLEAN_KEY], model=m, corruption="clean", severity=0.0, statistic="miou"))
        for k, sevs in layout.items():
            ys = np.stack([u[m][(k, s)] for s in sevs], -1)  # (1 + R, J)
            base = np.stack([u[baseline][(k, s)] for s in sevs], -1)
            auc.setdefault(m, {})[k] = robustness_auc(u[m][CLEAN_KEY], ys, sevs)
            ce.setdefault(m, {})[k] = corruption_error(ys, base)
            for j, s in enumerate(sevs):
                curves.append(row(ys[:, j], model=m, corruption=k, severity=s, statistic="miou"))
                if m != baseline:
                    curves.append(row(ys[:, j] - base[:, j], model=m, corruption=k, severity=s, statistic="miou_diff"))
    for m in models:
        for k in (*kinds, "mean"):
            a = auc[m][k] if k != "mean" else np.mean([auc[m][x] for x in kinds], 0)
            e = ce[m][k] if k != "mean" else np.mean([ce[m][x] for x in kinds], 0)
            b = auc[baseline][k] if k != "mean" else np.mean([auc[baseline][x] for x in kinds], 0)
            scores += [row(a, model=m, corruption=k, statistic="auc"), row(e, model=m, corruption=k, statistic="ce")]
            if m != baseline:
                scores.append(row(a - b, model=m, corruption=k, statistic="auc_diff"))
    if table is not None:
        curves += _table_rows(table, models)
    class_rows, size_rows = _class_view(grid[baseline][CLEAN_KEY], iou, baseline, layout, classes, names or {}, row)
    frame = lambda rows, keys: pd.DataFrame(rows, columns=[*keys, *COLUMNS])  # noqa: E731
    return GradedSummary(models, baseline, kinds, frame(curves, ("model", "corruption", "severity")),
                         frame(scores, ("model", "corruption")),
                         frame(class_rows, ("model", "class_id", "name", "area", "size")),
                         frame(size_rows, ("model", "size", "classes")), n, config.resamples, config.confidence)


def _table_rows(table: pd.DataFrame, models: Sequence[str]) -> list[dict]:
    """Seed means of the TABLE_METRICS per model and condition (no interval: they do not split by label)."""
    sub = table[table["metric"].isin(TABLE_METRICS) & table["model"].isin(models)]
    mean = sub.groupby(["model", "corruption", "severity", "metric"], sort=True)["value"].mean().reset_index()
    return [{"model": r.model, "corruption": r.corruption, "severity": float(r.severity), "statistic": r.metric,
             "value": float(r.value), "low": np.nan, "high": np.nan} for r in mean.itertuples(index=False)]


def _class_view(clean: np.ndarray, iou, baseline: str, layout, classes, names, row) -> tuple[list[dict], list[dict]]:
    """Per-class IoU on clean labels and its mean drop under the grid, per class and per class-size tertile."""
    areas = class_areas(clean)
    sizes = size_groups(areas)
    present = np.flatnonzero(areas > 0)
    ids = list(classes) if classes is not None else list(range(len(areas)))
    corrupted = [(k, s) for k, sevs in layout.items() for s in sevs]
    drop = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a class absent from a resample: NaN, skipped
        for m, g in iou.items():
            drop[m] = g[CLEAN_KEY] - np.nanmean(np.stack([g[key] for key in corrupted]), 0)  # (1 + R, K)
        by_size = {m: {z: np.nanmean(d[:, sizes == z], 1) for z in SIZES if (sizes == z).any()} for m, d in drop.items()}
    class_rows, size_rows = [], []
    for m in iou:
        for c in present:
            key = dict(model=m, class_id=int(ids[c]), name=class_label(ids[c], names), area=float(areas[c]),
                       size=sizes[c])
            class_rows += [row(iou[m][CLEAN_KEY][:, c], **key, statistic="iou_clean"),
                           row(drop[m][:, c], **key, statistic="iou_drop")]
            if m != baseline:
                class_rows.append(row(drop[m][:, c] - drop[baseline][:, c], **key, statistic="iou_drop_diff"))
        for z, x in by_size[m].items():
            members = ", ".join(class_label(ids[c], names, with_id=False) for c in present if sizes[c] == z)
            size_rows.append(row(x, model=m, size=z, classes=members, statistic="iou_drop"))
            if m != baseline:
                size_rows.append(row(x - by_size[baseline][z], model=m, size=z, classes=members,
                                     statistic="iou_drop_diff"))
    return class_rows, size_rows


# ---------------------------------------------------------------------------------------------- step budget

STEP_COLUMNS = ("sampler", "steps", "eta", "guidance")  # a budget row's sampler setting (evaluations = steps)


def step_budget(settings: Sequence[tuple[Mapping, Mapping[str, Mapping[str, np.ndarray]]]], a: str, b: str, *,
                config: BootstrapConfig = BootstrapConfig(), generator: torch.Generator | None = None) -> pd.DataFrame:
    """One row per sampler setting: mean mIoU drops of `a` and `b` and delta = drop(b) - drop(a) with its interval.

    `settings` holds (setting columns, {model: {condition name: (N, K, K)}}) pairs; every setting reuses the same
    label resamples (one seed drawn from `generator`), so the rows are paired with each other too.
    """
    if not settings:
        raise ValueError(f"no sampler setting that both {a!r} and {b!r} were run with")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    rows = []
    for columns, confusions in settings:
        r = compare_pair(a, b, confusions, config, torch.Generator().manual_seed(seed))
        rows.append({**{c: columns[c] for c in STEP_COLUMNS}, "clean_a": _clean(confusions[a]),
                     "clean_b": _clean(confusions[b]), "drop_a": r.mean_drop_a, "drop_b": r.mean_drop_b,
                     "delta": r.delta, "low": r.low, "high": r.high, "p_not_better": r.p_not_better,
                     "labels": r.labels, "conditions": ", ".join(r.conditions)})
    out = pd.DataFrame(rows)
    return out.sort_values(["sampler", "eta", "steps"], kind="stable").reset_index(drop=True)


def _clean(confusions: Mapping[str, np.ndarray]) -> float:
    return float(mean_iou(resampled_iou(np.ones((1, len(confusions["clean"]))), confusions["clean"]))[0])
