"""The results table: long-format rows, atomic CSV + Parquet, the markdown summary and run comparison.

Every value is one row: model, dataset, corruption, severity, seed, the model's fully resolved sampler setting
(every `scdm.settings.SamplingSettings` field: sampler, steps, spacing, guidance, extrapolation, dynamic_threshold,
eta, precision, label_diffusion), metric, value, n, and the weights' digest. Plots and summaries read only this frame.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from scdm.checkpoint import atomic_write_bytes

if TYPE_CHECKING:
    from scdm.settings import SamplingSettings

# a model's sampler setting: the SamplingSettings fields, resolved
SETTING = ("sampler", "steps", "spacing", "guidance", "extrapolation", "dynamic_threshold", "eta", "precision",
           "label_diffusion")
COLUMNS = ("model", "dataset", "corruption", "severity", "seed", *SETTING, "metric", "value", "n", "weights")
KEY = COLUMNS[:COLUMNS.index("metric") + 1]  # a row's identity
DTYPES = {"model": str, "dataset": str, "corruption": str, "severity": float, "seed": int, "sampler": str,
          "steps": int, "spacing": str, "guidance": float, "extrapolation": float, "dynamic_threshold": float,
          "eta": float, "precision": str, "label_diffusion": "boolean", "metric": str, "value": float, "n": int,
          "weights": str}
# the setting columns of the real and flat-paint rows
REFERENCE_COLUMNS = {"sampler": "none", "steps": 0, "spacing": "none", "guidance": 0.0, "extrapolation": 0.0,
                     "dynamic_threshold": 0.0, "eta": 0.0, "precision": "none", "label_diffusion": False}
# columns added after the first release: older tables read with these values ("", NaN, NA: not recorded)
DEFAULTS = {"eta": 0.0, "spacing": "", "extrapolation": float("nan"), "dynamic_threshold": float("nan"),
            "precision": "", "label_diffusion": pd.NA, "weights": ""}
LOWER_IS_BETTER = {"fid", "kid", "fd_effnetl0", "kid_effnetl0"}
CSV_NAME, PARQUET_NAME, SUMMARY_NAME = "metrics.csv", "metrics.parquet", "summary.md"


def setting_columns(settings: SamplingSettings | None) -> dict:
    """The table's setting columns of a resolved setting (`scdm.settings.resolve`); None: a reference row's."""
    from scdm.settings import identity

    return dict(REFERENCE_COLUMNS) if settings is None else {k: identity(settings)[k] for k in SETTING}


def _booleans(values: pd.Series) -> pd.Series:
    """A bool column back from CSV text ("True", "False"; "nan" or "" = not recorded)."""
    if values.dtype == bool or str(values.dtype) == "boolean":
        return values
    known = {"true": True, "false": False, "nan": pd.NA, "": pd.NA, "<na>": pd.NA}
    parse = lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else pd.NA if v is None or v is pd.NA else known[str(v).lower()]  # noqa: E731
    return values.map(parse).astype("boolean")


def frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> the canonical frame: exact columns, fixed dtypes, sorted, one row per key (DEFAULTS fill gaps)."""
    df = pd.DataFrame([{**DEFAULTS, **r} for r in rows], columns=list(COLUMNS))
    df = df.assign(label_diffusion=_booleans(df["label_diffusion"])).astype(DTYPES)
    dupes = df.duplicated(list(KEY))
    if dupes.any():
        raise ValueError(f"{int(dupes.sum())} duplicated rows, e.g. {df[dupes].iloc[0].to_dict()}")
    return df.sort_values(list(KEY), kind="stable").reset_index(drop=True)


def write_table(df: pd.DataFrame, run: Path) -> tuple[Path, Path]:
    """metrics.csv and metrics.parquet, each written to a temporary file and renamed."""
    run = Path(run)
    csv = df.to_csv(index=False, float_format="%.10g", na_rep="nan").encode()
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(run / PARQUET_NAME, buf.getvalue())
    atomic_write_bytes(run / CSV_NAME, csv)
    return run / CSV_NAME, run / PARQUET_NAME


def read_table(run: str | Path) -> pd.DataFrame:
    """The table of a run folder (Parquet, else CSV) or of a table file."""
    path = Path(run)
    if path.is_dir():
        path = path / PARQUET_NAME if (path / PARQUET_NAME).is_file() else path / CSV_NAME
    if not path.is_file():
        raise ValueError(f"no results table at {path}: run `python -m bench run --out DIR` first")
    floats = {c: ["", "nan", "NaN"] for c, t in DTYPES.items() if t is float}  # text columns keep "" and "NA" as text
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False, na_values=floats)
    df = df.assign(**{k: v for k, v in DEFAULTS.items() if k not in df.columns})  # older tables
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path} is not a bench table: columns {sorted(missing)} are missing")
    return frame(df[list(COLUMNS)].to_dict("records"))


# ---------------------------------------------------------------------------------------------- summaries

def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std over seeds and the number of seeds per (model, setting, corruption, severity, metric)."""
    keys = ["model", *SETTING, "corruption", "severity", "metric"]
    g = df.groupby(keys, sort=True, dropna=False)["value"]  # older tables have NaN settings: keep them
    out = g.agg(mean="mean", std="std", seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def _describe(column: str, value) -> str:
    if value is pd.NA or value == "" or (isinstance(value, float) and np.isnan(value)):
        return f"{column} ?"  # a table written before the column existed
    if column == "label_diffusion":
        return "Label Diffusion " + ("on" if value else "off")
    if column in ("spacing", "precision"):
        return f"{value} spacing" if column == "spacing" else str(value)
    return f"{column} {value:g}"


def series_labels(df: pd.DataFrame) -> list[str]:
    """One name per row's (model, setting): the model, plus the setting when a model has several (sampler, steps,
    guidance, eta when nonzero, and every other setting column that differs between the model's settings)."""
    others = [c for c in SETTING if c not in ("sampler", "steps", "guidance", "eta")]
    varying = {m: [c for c in others if g[c].nunique(dropna=False) > 1] for m, g in df.groupby("model")}
    settings = df.groupby("model")[list(SETTING)].apply(lambda g: len(g.drop_duplicates()))
    labels = []
    for r in df[["model", *SETTING]].itertuples(index=False):
        if settings[r.model] == 1:
            labels.append(r.model)
            continue
        parts = [r.sampler, f"{r.steps} steps", f"g {r.guidance:g}"] + ([f"eta {r.eta:g}"] if r.eta else [])
        labels.append(f"{r.model} ({', '.join(parts + [_describe(c, getattr(r, c)) for c in varying[r.model]])})")
    return labels


def condition_label(corruption: str, severity: float) -> str:
    return corruption if corruption == "clean" else f"{corruption} {severity:g}"


def _fmt(mean: float, std: float, seeds: int) -> str:
    digits = 4 if abs(mean) < 1 else 2
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if seeds > 1 else "")


def markdown_tables(df: pd.DataFrame) -> str:
    """One markdown table per metric: rows = model (setting), columns = clean and each corruption severity."""
    agg = aggregate(df)
    agg["row"] = series_labels(agg)
    agg["col"] = [condition_label(c, s) for c, s in zip(agg["corruption"], agg["severity"])]
    order = sorted(agg["col"].unique(), key=lambda c: (c != "clean", c))
    parts = []
    for metric in metric_order(agg["metric"].unique()):
        sub = agg[agg["metric"] == metric]
        arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better" if metric.startswith("miou") else ""
        cols = [c for c in order if c in set(sub["col"])]
        lines = [f"**{metric}**" + (f" ({arrow})" if arrow else ""), "",
                 "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for row in dict.fromkeys(sub["row"]):
            cells = []
            for c in cols:
                hit = sub[(sub["row"] == row) & (sub["col"] == c)]
                cells.append(_fmt(*hit[["mean", "std", "seeds"]].iloc[0]) if len(hit) else "")
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def per_class_markdown(confusions: Sequence[tuple[dict, np.ndarray]], classes: Sequence[int],
                       names: Mapping[int, str]) -> str:
    """Per-class IoU on clean labels: rows = classes present in the labels, named ('sky (3)', else 'id 3'), columns
    = model (setting); each from its (K, K) clean-label confusions over the segmenter's `classes`, pooled over
    seeds. `confusions` holds (model + setting columns, confusion) pairs; "" without any."""
    from .datasets import class_label
    from .segmenter import class_iou

    if not confusions:
        return ""
    series = series_labels(pd.DataFrame([{**REFERENCE_COLUMNS, **k} for k, _ in confusions]))
    pooled: dict[str, np.ndarray] = {}
    for label, (_, cm) in zip(series, confusions):
        pooled[label] = pooled.get(label, 0) + np.asarray(cm, np.int64)
    iou = {label: class_iou(cm) for label, cm in pooled.items()}  # (K,) each, NaN for an empty union
    present = np.flatnonzero(sum(cm.sum(1) for cm in pooled.values()) > 0)  # classes in the clean labels
    cols = list(pooled)
    lines = ["**Per-class IoU, clean labels** (higher is better; classes in the labels, pooled over seeds)", "",
             "| class | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for k in present:
        cells = ["" if np.isnan(iou[c][k]) else f"{iou[c][k]:.4f}" for c in cols]
        lines.append(f"| {class_label(classes[k], names)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def normalised_distances(df: pd.DataFrame) -> str:
    """Clean-label distances rescaled between the references: (D_model - D_real) / (D_flat-paint - D_real), 0 = as
    close as the held-out real images, 1 = as far as flat class colours; comparable across N, which the raw
    Fréchet distance is not (at N = 64 even the real images score ~100). "" without both reference rows."""
    agg = aggregate(df[df["corruption"] == "clean"])
    agg["row"] = series_labels(agg)
    cols, values = [], {}
    for metric in metric_order(m for m in agg["metric"].unique() if m in LOWER_IS_BETTER):
        sub = agg[agg["metric"] == metric]
        ref = {m: sub.loc[sub["model"] == m, "mean"] for m in ("real", "flat-paint")}
        if any(len(v) != 1 for v in ref.values()) or ref["flat-paint"].iloc[0] == ref["real"].iloc[0]:
            continue
        real, flat = ref["real"].iloc[0], ref["flat-paint"].iloc[0]
        cols.append(metric)
        for r in sub[~sub["model"].isin(ref)].itertuples(index=False):
            values[(r.row, metric)] = (r.mean - real) / (flat - real)
    if not values:
        return ""
    lines = ["**Normalised distance, clean labels** ((model - real) / (flat-paint - real): 0 = real images, "
             "1 = flat-paint; lower is better)", "", "| model | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for row in dict.fromkeys(r for r, _ in values):
        lines.append(f"| {row} | " + " | ".join(f"{values[(row, c)]:.3f}" if (row, c) in values else "" for c in cols) + " |")
    return "\n".join(lines) + "\n"


def metric_order(metrics: Iterable[str]) -> list[str]:
    """Metric names in the order of `bench.config.Metric` (unknown names last, alphabetically)."""
    from .config import Metric

    known = [m.value for m in Metric]
    return sorted(metrics, key=lambda m: (known.index(m) if m in known else len(known), m))


def summary_markdown(df: pd.DataFrame, *, title: str = "Benchmark", notes: Iterable[str] = (),
                     sections: Iterable[str] = ()) -> str:
    """The run's summary page: what was run, the per-metric tables, extra markdown `sections` (e.g.
    `bench.robustness.drop_summary`; empty ones are left out) and notes."""
    n = df.groupby("metric")["n"].max().to_dict()
    head = [f"# {title}", "",
            f"Dataset `{', '.join(sorted(df['dataset'].unique()))}`; models {', '.join(f'`{m}`' for m in sorted(df['model'].unique()))}; "
            f"seeds {sorted(df['seed'].unique().tolist())}; images per value up to {max(n.values()) if n else 0}. "
            "Mean ± std over seeds.", "", ""]
    notes = list(notes)
    extra = "".join("\n" + x for x in sections if x)
    tail = ["", "Notes:", ""] + [f"- {x}" for x in notes] if notes else []
    return "\n".join(head) + markdown_tables(df) + extra + "\n".join(tail) + ("\n" if tail else "")


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Rows of two tables side by side: value_a, value_b, diff = b - a; rows only in one table have NaN."""
    keys = list(KEY)
    m = a[keys + ["value"]].merge(b[keys + ["value"]], on=keys, how="outer", suffixes=("_a", "_b"))
    m["diff"] = m["value_b"] - m["value_a"]
    with np.errstate(divide="ignore", invalid="ignore"):
        m["rel"] = m["diff"] / m["value_a"].abs()
    return m.sort_values(keys).reset_index(drop=True)
