"""Region-level errors: whole regions given a confusable class, small objects left out, partial maps.

A region is a 4-connected component of equal (label, instance) pairs, so with an instance map two
touching objects of one class are separate regions. Per map, regions are visited in raster order of
their first pixel and each draws its random numbers from the map's own stream in that order.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from . import morph, rng
from .confusion import TABLES
from .kind import Kind, check_choice, check_float, check_int


def _regions(labels: Tensor, instances: Tensor | None) -> morph.Components:
    """Components of equal (label, instance) pairs (of labels alone without instances)."""
    if instances is None:
        return morph.connected_components(labels)
    return morph.connected_components(labels * (int(instances.max()) + 1) + instances)


def _per_region(cc: morph.Components, gens: Sequence[torch.Generator], device: torch.device) -> Tensor:
    """One U[0, 1) draw per region (per map, in raster order of first pixels), spread onto runs: (R,)."""
    names = cc.names()  # (C,) root runs, map-major raster order
    counts = torch.bincount(cc.batch[names], minlength=len(gens)).tolist()
    u = rng.uniform_each(gens, counts).to(device)  # (C,)
    slot = torch.zeros_like(cc.root)
    slot[names] = torch.arange(len(names), device=device)
    return u[slot[cc.root]]


def confusion(labels: Tensor, *, p: float, dataset: str | None, gens: Sequence[torch.Generator],
              instances: Tensor | None, unlabeled: int) -> Tensor:
    """Each region (not unlabeled) is relabelled with probability p to a confusable class.

    The class comes from the ``dataset`` confusion table (uniformly among the class's partners); classes
    without partners, or any class when no table is given, take another class present in the same map.
    """
    p = check_float("p", p, 0.0, 1.0)
    dataset = check_choice("dataset", dataset, (None, *TABLES))
    dev = labels.device
    cc = _regions(labels, instances)
    pick = _per_region(cc, gens, dev)  # (R,) whether the region is relabelled
    choice = _per_region(cc, gens, dev)  # (R,) which confusable class it gets
    run_class = labels.view(-1)[cc.start]
    # fallback: the j-th other class present in the same map, in ascending id order
    present = morph.class_table(labels, exclude=unlabeled)  # (B, M)
    flat = cc.batch * present.shape[1] + run_class
    own = present.view(-1)[flat]  # (R,) is the run's class among the present ones
    others = present.sum(1)[cc.batch] - own.long()
    j = torch.minimum((choice * others).long(), (others - 1).clamp(min=0))
    own_rank = present.long().cumsum(1).view(-1)[flat] - 1
    j = j + (own & (j >= own_rank)).long()  # skip the region's own class
    ids = _present_ids(present)
    target = torch.where(others > 0, ids[cc.batch, j.clamp(max=ids.shape[1] - 1)], run_class)
    if dataset is not None:
        partners, count = TABLES[dataset].dense(int(run_class.max()) + 1, dev)
        n = count[run_class]
        k = torch.minimum((choice * n).long(), (n - 1).clamp(min=0))
        from_table = partners[run_class, k.clamp(max=partners.shape[1] - 1)]
        target = torch.where(n > 0, from_table, target)
    relabel = (pick < p) & (run_class != unlabeled)
    run_new = torch.where(relabel, target, run_class)
    return run_new[cc.run]


def _present_ids(present: Tensor) -> Tensor:
    """Ids present in each map, ascending, padded with -1: (B, K)."""
    b = present.shape[0]
    counts = present.sum(1)
    width = max(int(counts.max()), 1) if b else 1
    where = torch.nonzero(present)  # (N, 2) map-major, ids ascending
    slot = torch.arange(len(where), device=present.device) - (counts.cumsum(0) - counts)[where[:, 0]]
    out = torch.full((b, width), -1, dtype=torch.int64, device=present.device)
    out[where[:, 0], slot] = where[:, 1]
    return out


def missing(labels: Tensor, *, max_area: float, p: float, fill: str, gens: Sequence[torch.Generator],
            instances: Tensor | None, unlabeled: int) -> Tensor:
    """Regions smaller than ``max_area`` (fraction of the map) are left out with probability p.

    ``fill="unlabeled"`` leaves them unlabeled; ``fill="surround"`` gives each removed pixel the id of
    the nearest kept pixel (L1), i.e. the object is absorbed by what surrounds it.
    """
    max_area = check_float("max_area", max_area, 0.0, 1.0)
    p = check_float("p", p, 0.0, 1.0)
    fill = check_choice("fill", fill, ("unlabeled", "surround"))
    _, h, w = labels.shape
    cc = _regions(labels, instances)
    pick = _per_region(cc, gens, labels.device)
    run_class = labels.view(-1)[cc.start]
    dropped = (cc.areas() < max_area * h * w) & (pick < p) & (run_class != unlabeled)
    removed = dropped[cc.run]  # (B, H, W)
    if fill == "unlabeled":
        return labels.masked_fill(removed, unlabeled)
    dist, nearest = morph.l1_nearest(~removed)
    absorbed = morph.take(labels, nearest).masked_fill_(dist == torch.iinfo(dist.dtype).max, unlabeled)
    return torch.where(removed, absorbed, labels)


def partial(labels: Tensor, *, drop: float, max_keep: int | None, gens: Sequence[torch.Generator],
            instances: Tensor | None, unlabeled: int) -> Tensor:
    """Keep only the K largest regions of each map, as in sparse-mask layout-to-image protocols; the rest unlabeled.

    With N labelled regions (unlabeled ones are not counted), K = max(1, N - floor(drop * N)), at most
    ``max_keep``; ties in area go to the region that comes first in raster order. Kept sets are nested in K.
    """
    drop = check_float("drop", drop, 0.0, 1.0)
    if max_keep is not None:
        max_keep = check_int("max_keep", max_keep, 1)
    b = labels.shape[0]
    cc = _regions(labels, instances)
    names = cc.names()  # (C,) root runs, map-major raster order
    names = names[labels.view(-1)[cc.start[names]] != unlabeled]
    area = cc.areas()[names]
    batch = cc.batch[names]
    order = torch.sort(area, descending=True, stable=True).indices  # largest first, raster order on ties
    order = order[torch.sort(batch[order], stable=True).indices]  # (C,) map-major, largest first per map
    counts = torch.bincount(batch, minlength=b).tolist()
    rank = torch.cat([torch.arange(n, device=labels.device) for n in counts])  # (C,) place in its map's order
    keep = [max(1, n - math.floor(drop * n + 1e-9)) for n in counts]  # 1e-9: 0.29 * 100 is 28.999...
    if max_keep is not None:
        keep = [min(k, max_keep) for k in keep]
    kept_names = names[order[rank < torch.tensor(keep, device=labels.device)[batch[order]]]]
    kept = torch.zeros_like(cc.root, dtype=torch.bool)
    kept[kept_names] = True
    return labels.masked_fill(~kept[cc.root][cc.run], unlabeled)


CONFUSION = Kind(
    name="confusion",
    apply=confusion,
    defaults={"p": 0.2},
    from_severity=lambda s: {"p": s},
    options={"dataset": None},
    summary="wrong class picked: whole regions get a confusable class (grass/field, road/sidewalk, ...)",
    severity_rule="p = s (probability that a region is relabelled)",
)
MISSING = Kind(
    name="missing",
    apply=missing,
    defaults={"max_area": 0.005},
    from_severity=lambda s: {"max_area": 0.02 * s},
    options={"p": 1.0, "fill": "unlabeled"},
    summary="small objects left out: regions below an area threshold unlabeled or absorbed by their surround",
    severity_rule="max_area = 0.02 s (fraction of the map area)",
)
PARTIAL = Kind(
    name="partial",
    apply=partial,
    defaults={"drop": 0.5},
    from_severity=lambda s: {"drop": s},
    options={"max_keep": None},
    summary="partial maps: only the largest regions are labelled, the rest left unlabeled",
    severity_rule="drop = s (share of the regions dropped, smallest first; s = 1 keeps only the largest)",
)
