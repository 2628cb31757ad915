"""The "careless user" step: a `noise_sim` corruption applied to the label before it reaches the models."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

import noise_sim
from scdm.seeds import seed_for

from .classes import ClassTable

NONE = "none"  # no corruption


def corruption_choices() -> list[str]:
    """Dropdown choices: 'none' and every registered noise_sim kind."""
    return [NONE, *noise_sim.KINDS]


def describe(kind: str) -> str:
    """One line about a kind for the UI."""
    if kind == NONE:
        return "no corruption: the models get the label exactly as drawn"
    k = noise_sim.get_kind(kind)
    return f"**{kind}**: {k.summary}" + (f" (severity: {k.severity_rule})" if k.severity_rule else "")


def check_corruption(kind: Any, severity: float) -> tuple[str, float]:
    """A known kind name (or 'none') and a severity in [0, 1], else a ValueError listing the choices."""
    if not isinstance(kind, str) or kind.strip().lower() not in corruption_choices():
        raise ValueError(f"unknown corruption {kind!r}; use one of {corruption_choices()}")
    if not 0.0 <= float(severity) <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    return kind.strip().lower(), float(severity)


def apply_corruption(label: np.ndarray, kind: str, severity: float, seed: int, table: ClassTable) -> np.ndarray:
    """(H, W) raw ids -> corrupted copy; deterministic in (kind, severity, seed); unlabeled = table.fill_id.

    The label is label 0 of a one-label set (`scdm.seeds`): the bench corrupts its label 0 under run seed `seed` alike.
    """
    kind, severity = check_corruption(kind, severity)
    label = table.check(label)
    if kind == NONE or severity == 0:
        return label.copy()
    gen = torch.Generator().manual_seed(seed_for(int(seed), "corruption", 0))
    out = noise_sim.corrupt(torch.from_numpy(label), kind, severity=severity, generator=gen, unlabeled=table.fill_id,
                            **noise_sim.encoding_options(kind, table))  # colour: the model's own palette
    out = out.numpy().astype(np.int64)
    bad = table.invalid_ids(out)
    if bad:  # e.g. a confusion table that names classes this model does not have
        raise ValueError(f"corruption {kind!r} produced ids {bad[:10]} that this model does not know; "
                         f"pick another corruption")
    return out
