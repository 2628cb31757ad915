"""The results table: long-format rows, atomic CSV + Parquet, the markdown summary and run comparison.

Every value is one row: model, dataset, corruption, severity, seed, sampler, steps, guidance, eta, metric, value, n.
Plots and summaries read only this frame.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from scdm.checkpoint import atomic_write_bytes

COLUMNS = ("model", "dataset", "corruption", "severity", "seed", "sampler", "steps", "guidance", "eta", "metric", "value",
           "n")
KEY = COLUMNS[:10]  # a row's identity
SETTING = ("sampler", "steps", "guidance", "eta")  # a model's sampler setting
DTYPES = {"model": str, "dataset": str, "corruption": str, "severity": float, "seed": int, "sampler": str,
          "steps": int, "guidance": float, "eta": float, "metric": str, "value": float, "n": int}
DEFAULTS = {"eta": 0.0}  # columns added after the first release: older tables read with these values
LOWER_IS_BETTER = {"fid", "kid", "fd_effnetl0", "kid_effnetl0"}
CSV_NAME, PARQUET_NAME, SUMMARY_NAME = "metrics.csv", "metrics.parquet", "summary.md"


def frame(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows -> the canonical frame: exact columns, fixed dtypes, sorted, one row per key (DEFAULTS fill gaps)."""
    df = pd.DataFrame([{**DEFAULTS, **r} for r in rows], columns=list(COLUMNS))
    df = df.astype(DTYPES)
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
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, keep_default_na=False)
    df = df.assign(**{k: v for k, v in DEFAULTS.items() if k not in df.columns})
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path} is not a bench table: columns {sorted(missing)} are missing")
    return frame(df[list(COLUMNS)].to_dict("records"))


# ---------------------------------------------------------------------------------------------- summaries

def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std over seeds and the number of seeds per (model, setting, corruption, severity, metric)."""
    keys = ["model", *SETTING, "corruption", "severity", "metric"]
    g = df.groupby(keys, sort=True)["value"]
    out = g.agg(mean="mean", std="std", seeds="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def series_labels(df: pd.DataFrame) -> list[str]:
    """One name per row's (model, setting): the model, plus the setting when a model has several."""
    settings = df.groupby("model")[list(SETTING)].apply(lambda g: len(g.drop_duplicates()))
    return [m if settings[m] == 1 else f"{m} ({s}, {st} steps, g {g:g}" + (f", eta {e:g})" if e else ")")
            for m, s, st, g, e in zip(df["model"], df["sampler"], df["steps"], df["guidance"], df["eta"])]


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
    for metric in [m for m in _metric_order(agg["metric"].unique())]:
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


def _metric_order(metrics: Iterable[str]) -> list[str]:
    from .config import Metric

    known = [m.value for m in Metric]
    return sorted(metrics, key=lambda m: (known.index(m) if m in known else len(known), m))


def summary_markdown(df: pd.DataFrame, *, title: str = "Benchmark", notes: Iterable[str] = ()) -> str:
    """The run's summary page: what was run, the per-metric tables and notes."""
    n = df.groupby("metric")["n"].max().to_dict()
    head = [f"# {title}", "",
            f"Dataset `{', '.join(sorted(df['dataset'].unique()))}`; models {', '.join(f'`{m}`' for m in sorted(df['model'].unique()))}; "
            f"seeds {sorted(df['seed'].unique().tolist())}; images per value up to {max(n.values()) if n else 0}. "
            "Mean ± std over seeds.", "", ""]
    from .robustness import drop_markdown

    notes = list(notes)
    drop = drop_markdown(df) if "miou" in set(df["metric"]) else ""
    if drop:
        drop += ("\nA paired bootstrap interval for the difference of two models' mean drops: "
                 "`python -m bench robustness RUN`.\n")
    tail = ["", "Notes:", ""] + [f"- {x}" for x in notes] if notes else []
    return "\n".join(head) + markdown_tables(df) + ("\n" + drop if drop else "") + "\n".join(tail) + ("\n" if tail else "")


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Rows of two tables side by side: value_a, value_b, diff = b - a; rows only in one table have NaN."""
    keys = list(KEY)
    m = a[keys + ["value"]].merge(b[keys + ["value"]], on=keys, how="outer", suffixes=("_a", "_b"))
    m["diff"] = m["value_b"] - m["value_a"]
    with np.errstate(divide="ignore", invalid="ignore"):
        m["rel"] = m["diff"] / m["value_a"].abs()
    return m.sort_values(keys).reset_index(drop=True)
