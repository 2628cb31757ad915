"""The Label Diffusion explainer: y_t ~ q(y_t | y_0) of the current label under a model's class-wise schedule.

Notation: gamma_t(c) -> probability that a pixel of class c keeps its label at step t (SCDM Eq. 6);
a dropped pixel becomes the all-zero [MASK] vector, drawn as a grey checkerboard.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from scdm.pipeline import Pipeline

from .classes import ClassTable
from .runner import channel_ids
from .views import label_view, onehot_view, upscale

CURVE_POINTS = 51  # samples of t per class in the gamma_t plot


def diffused_label(pipe: Pipeline, label: np.ndarray, t: int, table: ClassTable, seed: int = 0) -> np.ndarray:
    """Upscaled colour view of one draw of y_t for the (H, W) label at original step t."""
    if t == 0 or not pipe.is_scdm:
        return label_view(label, table)
    y = pipe.diffuse_labels(label[None], int(t), generator=torch.Generator().manual_seed(int(seed)))
    return upscale(onehot_view(y[0], table, channel_ids(pipe)))


def keep_table(pipe: Pipeline, label: np.ndarray, t: int, table: ClassTable) -> str:
    """Markdown: for each class in the label, its pixels and gamma_t(c), the chance a pixel keeps it at t."""
    if not pipe.is_scdm:
        return f"`{pipe.card.name or 'this model'}` does not diffuse labels (SDM): y_t = y_0 at every step."
    ids = channel_ids(pipe)
    gamma = pipe.label_diffusion.gamma[int(t)]  # (K,)
    uniq, counts = np.unique(label, return_counts=True)
    rows = ["| class | pixels | keep probability gamma_t(c) |", "|---|---:|---:|"]
    for rid, cnt in sorted(zip(uniq.tolist(), counts.tolist()), key=lambda rc: -rc[1]):
        if rid in ids:
            rows.append(f"| {table.name_of(rid)} | {cnt} | {float(gamma[ids.index(rid)]):.3f} |")
        else:
            rows.append(f"| {table.name_of(rid)} | {cnt} | already [MASK] |")
    return f"t = {int(t)} of {pipe.card.diffusion.num_timesteps}\n\n" + "\n".join(rows)


def gamma_curves(pipe: Pipeline, label: np.ndarray, table: ClassTable) -> pd.DataFrame:
    """Long-format (t, keep probability, class) rows for the classes in the label."""
    ids = channel_ids(pipe)
    steps = np.linspace(0, pipe.card.diffusion.num_timesteps, CURVE_POINTS).round().astype(int)
    gamma = pipe.label_diffusion.gamma[torch.as_tensor(steps)].numpy()  # (P, K)
    rows = [{"t": int(s), "keep probability": float(gamma[j, ids.index(rid)]), "class": table.name_of(rid)}
            for rid in np.unique(label).tolist() if rid in ids for j, s in enumerate(steps)]
    return pd.DataFrame(rows, columns=["t", "keep probability", "class"])
