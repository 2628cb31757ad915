"""The "careless user" preset: a seeded random composition of the human-error kinds.

Per map, each part is switched on with its own probability (one U[0, 1) draw per part, in the order
below; if none is on, the part whose draw came closest to its probability is used). Parts run in this
order, each at severity ``strength * weight``: confusion and missing see the instance map (the
geometry is still intact), the later parts use the labels alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from . import geometric, painting, regions, rng
from .kind import Kind, check_choice, check_float
from .confusion import TABLES


@dataclass(frozen=True)
class Part:
    """One ingredient of the mixture."""

    kind: Kind
    probability: float  # chance that a map gets this error at all
    weight: float  # its severity relative to the mixture's strength
    sees_instances: bool  # only parts that run before any geometric change get the instance map


CARELESS_USER: tuple[Part, ...] = (
    Part(regions.CONFUSION, probability=0.3, weight=0.3, sees_instances=True),
    Part(regions.MISSING, probability=0.6, weight=1.0, sees_instances=True),
    Part(geometric.POLYGON, probability=0.3, weight=0.6, sees_instances=False),
    Part(geometric.SHAKY, probability=0.8, weight=0.7, sees_instances=False),
    Part(painting.OVERPAINT, probability=0.5, weight=0.6, sees_instances=False),
    Part(painting.UNDERPAINT, probability=0.4, weight=0.5, sees_instances=False),
)


def mixture(labels: Tensor, *, strength: float, dataset: str | None, gens: Sequence[torch.Generator],
            instances: Tensor | None, unlabeled: int) -> Tensor:
    """Apply the parts each map drew, in preset order, to the maps that drew them."""
    strength = check_float("strength", strength, 0.0, 1.0)
    dataset = check_choice("dataset", dataset, (None, *TABLES))
    u = rng.uniform(gens, len(CARELESS_USER))  # (B, P)
    probability = torch.tensor([part.probability for part in CARELESS_USER])
    on = u < probability
    fallback = torch.nn.functional.one_hot((u - probability).argmin(1), len(CARELESS_USER)).bool()
    on = torch.where(on.any(1, keepdim=True), on, fallback)
    out = labels.clone()
    for p, part in enumerate(CARELESS_USER):
        idx = torch.nonzero(on[:, p])[:, 0].tolist()
        if not idx:
            continue
        params = {**part.kind.options, **part.kind.from_severity(strength * part.weight)}
        if "dataset" in params:
            params["dataset"] = dataset
        rows = torch.tensor(idx, device=labels.device)
        inst = instances[rows] if instances is not None and part.sees_instances else None
        sub_gens = [gens[i] for i in idx]
        out[rows] = part.kind.apply(out[rows], gens=sub_gens, instances=inst, unlabeled=unlabeled, **params)
    return out


MIXTURE = Kind(
    name="mixture",
    apply=mixture,
    defaults={"strength": 0.5},
    from_severity=lambda s: {"strength": s},
    options={"dataset": None},
    summary="a realistic careless user: a random mix of the errors above, different for every map",
    severity_rule="strength = s (each part runs at strength * its weight)",
)
