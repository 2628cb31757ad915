"""Metric-vs-severity plots drawn from the results frame alone (one figure per metric, one panel per corruption)."""
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
