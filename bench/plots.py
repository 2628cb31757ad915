"""Metric-vs-severity plots drawn from the results frame alone (one figure per metric, one panel per corruption), and
the graded grid's pictures drawn from `bench.summary.GradedSummary.curves` (difference heatmap, small multiples)."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from scdm.checkpoint import atomic_write_bytes

from .report import LOWER_IS_BETTER, aggregate, metric_order, series_labels

REFERENCE_MODELS = ("real",)  # clean-only rows drawn as horizontal lines


def save_figure(fig, path: Path) -> Path:
    """A matplotlib figure as a PNG at `path`, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def plot_metric(df: pd.DataFrame, metric: str):
    """A matplotlib Figure: metric against severity, a panel per corruption, a line per model (± std over seeds).

    Clean labels are severity 0 of every panel; models scored on clean labels only (`real`) are dashed lines.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = aggregate(df[df["metric"] == metric])
    agg["series"] = series_labels(agg)
    corruptions = sorted(c for c in agg["corruption"].unique() if c != "clean") or ["clean"]
    fig, axes = plt.subplots(1, len(corruptions), figsize=(3.6 * len(corruptions), 3.2), sharey=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    series = list(dict.fromkeys(agg["series"]))
    for ax, corruption in zip(axes[0], corruptions):
        for k, name in enumerate(series):
            s = agg[agg["series"] == name]
            colour = colours[k % len(colours)]
            line = s[s["corruption"].isin(["clean", corruption])].sort_values("severity")
            if line.empty:
                continue
            if set(s["corruption"]) == {"clean"} and corruption != "clean":
                ax.axhline(line["mean"].iloc[0], ls="--", lw=1, color=colour, label=name)
                continue
            ax.errorbar(line["severity"], line["mean"], yerr=line["std"], marker="o", ms=3, capsize=2,
                        color=colour, label=name)
        ax.set_title(corruption)
        ax.set_xlabel("severity (0 = clean)")
        ax.grid(alpha=0.3)
    arrow = " (lower is better)" if metric in LOWER_IS_BETTER else ""
    axes[0][0].set_ylabel(metric + arrow)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    return fig


def plot_all(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """plots/<metric>.png for every metric in the frame."""
    import matplotlib.pyplot as plt

    out = []
    for metric in metric_order(df["metric"].unique()):
        fig = plot_metric(df, metric)
        out.append(save_figure(fig, Path(out_dir) / f"{metric}.png"))
        plt.close(fig)
    return out


# ---------------------------------------------------------------------------------------------- graded grids

def plot_difference_heatmap(curves: pd.DataFrame, baseline: str, statistic: str = "miou_diff"):
    """Kinds x severities heatmap of each model's mIoU minus `baseline`'s (`bench.summary.GradedSummary.curves`), a
    panel per model; a cell whose interval excludes 0 is marked '*' with a bold value and border."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    sub = curves[curves["statistic"] == statistic]
    models, kinds = list(dict.fromkeys(sub["model"])), list(dict.fromkeys(sub["corruption"]))
    sevs = sorted(set(sub["severity"]))
    lim = float(np.nanmax(np.abs(sub["value"]))) if len(sub) else 0.0
    lim = lim or 1e-6
    panels = max(len(models), 1)
    fig, axes = plt.subplots(1, panels, figsize=(1.2 + (1.0 + 0.8 * len(sevs)) * panels, 1.4 + 0.32 * len(kinds)),
                             squeeze=False)
    image = None
    for ax, m in zip(axes[0], models):
        value = np.full((len(kinds), len(sevs)), np.nan)  # (kinds, severities)
        marked = np.zeros(value.shape, bool)
        for r in sub[sub["model"] == m].itertuples(index=False):
            i, j = kinds.index(r.corruption), sevs.index(r.severity)
            value[i, j], marked[i, j] = r.value, r.low > 0 or r.high < 0
        image = ax.imshow(value, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
        for i, j in zip(*np.nonzero(np.isfinite(value))):
            ax.text(j, i, f"{value[i, j]:+.3f}" + ("*" if marked[i, j] else ""), ha="center", va="center", fontsize=6.5,
                    fontweight="bold" if marked[i, j] else "normal",
                    color="white" if abs(value[i, j]) > 0.6 * lim else "black")
            if marked[i, j]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.2, ec="black"))
        ax.set_xticks(range(len(sevs)), [f"{s:g}" for s in sevs])
        ax.set_yticks(range(len(kinds)), kinds if ax is axes[0][0] else [""] * len(kinds))
        ax.set_xlabel("severity", fontsize=8)
        ax.set_title(f"mIoU: {m} - {baseline}", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="mIoU difference")
    fig.text(0.01, 0.005, "*, bold, framed: the interval excludes 0", fontsize=7)
    return fig


def plot_severity_curves(curves: pd.DataFrame, statistic: str = "miou", columns: int = 5):
    """Small multiples of `statistic` against severity (0 = clean), a panel per kind, a line per model, its
    interval (where it has one) as a band (`bench.summary.GradedSummary.curves`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sub = curves[curves["statistic"] == statistic]
    kinds = [k for k in dict.fromkeys(sub["corruption"]) if k != "clean"]
    if not kinds:
        raise ValueError(f"no corrupted condition has {statistic!r}: nothing to plot against severity")
    cols = max(1, min(columns, len(kinds)))
    rows = max(1, -(-len(kinds) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows + 0.6), sharey=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, kind in zip(axes.flat, kinds):
        for k, m in enumerate(dict.fromkeys(sub["model"])):
            line = sub[(sub["model"] == m) & sub["corruption"].isin(["clean", kind])].sort_values("severity")
            colour = colours[k % len(colours)]
            ax.plot(line["severity"], line["value"], marker="o", ms=3, color=colour, label=m)
            if line["low"].notna().any():
                ax.fill_between(line["severity"], line["low"], line["high"], color=colour, alpha=0.2, lw=0)
        ax.set_title(kind, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(kinds):]:
        ax.axis("off")
    arrow = " (lower is better)" if statistic in LOWER_IS_BETTER else ""
    for ax in axes[:, 0]:
        ax.set_ylabel(statistic + arrow, fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("severity (0 = clean)", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    return fig
