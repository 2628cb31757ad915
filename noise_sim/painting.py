"""Brush errors: strokes that bleed into neighbours, stop short of boundaries, only scribble a region, or
leave whole blobs of the canvas unpainted.

Stroke widths vary smoothly along each boundary: a smooth random field m(p) scales the brush ``radius``
(``wavelength`` px between independent values).
Changed sets are nested in ``radius`` / ``erase`` / ``area``, so the changed fraction never drops as severity grows.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from . import morph, rng
from .kind import Kind, check_float, check_int, round_half_up


def _chosen_classes(labels: Tensor, gens: Sequence[torch.Generator], fraction: float,
                    unlabeled: int) -> tuple[Tensor, Tensor]:
    """Per map, each present class (not unlabeled) is chosen with probability ``fraction``.

    One U[0, 1) draw per present class, in ascending id order, from the map's own stream. Returns the
    draws (B, M) float32 (1 for absent ids) and the chosen table (B, M) bool, both on the CPU.
    """
    present = morph.class_table(labels, exclude=unlabeled).cpu()
    u = torch.ones(present.shape)
    u[present] = rng.uniform_each(gens, present.sum(1).tolist())  # row-major = map, then id order
    return u, u < fraction


def _reach(gens: Sequence[torch.Generator], h: int, w: int, radius: float, wavelength: float,
           low: float) -> Tensor:
    """Brush reach per pixel, radius * m(p) with m a smooth field in [low, 1]: (B, H, W) float32, CPU."""
    return radius * (low + (1 - low) * rng.smooth_uniform(gens, h, w, wavelength))


def overpaint(labels: Tensor, *, radius: float, fraction: float, wavelength: float,
              gens: Sequence[torch.Generator], instances: Tensor | None, unlabeled: int) -> Tensor:
    """Chosen classes bleed: each spreads up to the local reach (near-disc steps) over its neighbours.

    Where two chosen classes meet, the one with the smaller draw paints over the other.
    """
    radius = check_float("radius", radius, 0.0)
    fraction = check_float("fraction", fraction, 0.0, 1.0)
    wavelength = check_float("wavelength", wavelength, 1.0)
    _, h, w = labels.shape
    u, chosen = _chosen_classes(labels, gens, fraction, unlabeled)
    steps = _reach(gens, h, w, radius, wavelength, 0.25).floor_()
    steps = steps.to(torch.uint8 if radius < 255 else torch.int16)
    # priority 1..n per map (smaller draw -> higher), 0 for classes that do not bleed
    order = torch.where(chosen, u, torch.full_like(u, 2.0)).argsort(dim=1, stable=True)  # (B, M)
    n_chosen = chosen.sum(1, keepdim=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(u.shape[1]).expand_as(order))
    priority = torch.where(chosen, n_chosen - rank, torch.zeros_like(rank))  # (B, M)
    pdtype = torch.uint8 if u.shape[1] < 256 else torch.int32
    owner = torch.zeros(u.shape[0], u.shape[1] + 1, dtype=torch.int64)  # priority -> class id
    maps, ids = torch.nonzero(chosen, as_tuple=True)
    owner[maps, priority[maps, ids]] = ids
    dev = labels.device
    start = morph.lookup(priority.to(pdtype).to(dev), labels)  # (B, H, W)
    spread = morph.spread_max(start, steps.to(dev))
    painted = morph.lookup(owner.to(dev), spread.long())
    return torch.where(spread != start, painted, labels)


def underpaint(labels: Tensor, *, radius: float, fraction: float, wavelength: float,
               gens: Sequence[torch.Generator], instances: Tensor | None, unlabeled: int) -> Tensor:
    """Strokes of chosen classes stop short: the outermost floor(reach) pixel rows become unlabeled.

    The reach varies smoothly in [0, radius], so strokes touch the boundary in places and fall well short
    in others. Boundaries are those of ``instances`` when given, else of the labels (both sides, as in
    ``edge``); distances count near-disc steps.
    """
    radius = check_float("radius", radius, 0.0)
    fraction = check_float("fraction", fraction, 0.0, 1.0)
    wavelength = check_float("wavelength", wavelength, 1.0)
    _, h, w = labels.shape
    _, chosen = _chosen_classes(labels, gens, fraction, unlabeled)
    stopping = morph.lookup(chosen.to(labels.device), labels)
    layers = _reach(gens, h, w, radius, wavelength, 0.0).floor_().to(labels.device)  # rows of pixels left out
    source = instances if instances is not None else labels
    dist = morph.step_distance(morph.edges4(source), math.ceil(radius))  # 0 on the boundary itself
    return labels.masked_fill(stopping & (dist < layers), unlabeled)


def scribble(labels: Tensor, *, erase: float, width: int, wavelength: float, gens: Sequence[torch.Generator],
             instances: Tensor | None, unlabeled: int) -> Tensor:
    """Keep strokes along each region's medial ridge; erase a smooth random ``erase`` share of the rest.

    The ridge is where the L1 distance to the region boundary (image border included) has a local
    maximum over the 4 neighbours; strokes are the ridge dilated by the ``width`` diamond. Every region
    keeps at least its ridge. ``erase`` 1 leaves only the strokes.
    """
    erase = check_float("erase", erase, 0.0, 1.0)
    width = check_int("width", width, 0)
    wavelength = check_float("wavelength", wavelength, 1.0)
    _, h, w = labels.shape
    field = rng.smooth_uniform(gens, h, w, wavelength).to(labels.device)
    source = instances if instances is not None else labels
    boundary = morph.edges4(source)
    boundary[:, 0, :] = boundary[:, -1, :] = True
    boundary[:, :, 0] = boundary[:, :, -1] = True
    dist = morph.l1_distance(boundary)
    neighbour_max = torch.full_like(dist, -1)
    neighbour_max[:, 1:, :] = dist[:, :-1, :]
    neighbour_max[:, :-1, :] = torch.maximum(neighbour_max[:, :-1, :], dist[:, 1:, :])
    neighbour_max[:, :, 1:] = torch.maximum(neighbour_max[:, :, 1:], dist[:, :, :-1])
    neighbour_max[:, :, :-1] = torch.maximum(neighbour_max[:, :, :-1], dist[:, :, 1:])
    strokes = morph.dilate_diamond(dist >= neighbour_max, width)
    kept = strokes | (field >= erase) if erase < 1 else strokes
    return labels.masked_fill(~kept, unlabeled)


def blobs(labels: Tensor, *, area: float, wavelength: float, gens: Sequence[torch.Generator],
          instances: Tensor | None, unlabeled: int) -> Tensor:
    """Smooth random blobs covering ``area`` of the map are left unlabeled: patches the user never painted.

    The blobs are the round(area * H * W) pixels where a smooth random field (``wavelength`` px between
    independent values) is lowest, so they cover exactly that area and grow with it (nested).
    """
    area = check_float("area", area, 0.0, 1.0)
    wavelength = check_float("wavelength", wavelength, 1.0)
    b, h, w = labels.shape
    k = round_half_up(area * h * w)
    if k == 0:
        return labels.clone()
    field = rng.smooth_gaussian(gens, 1, h, w, wavelength).view(b, h * w)  # (B, H*W), on the CPU
    threshold = field.kthvalue(k, dim=1, keepdim=True).values  # (B, 1): the k-th lowest value per map
    blob = (field <= threshold).view(b, h, w)
    return labels.masked_fill(blob.to(labels.device), unlabeled)


OVERPAINT = Kind(
    name="overpaint",
    apply=overpaint,
    defaults={"radius": 6.0},
    from_severity=lambda s: {"radius": 12.0 * s},
    options={"fraction": 0.5, "wavelength": 32.0},
    summary="brush strokes that bleed: a random half of the classes spill into their neighbours",
    severity_rule="radius = 12 s px (reach varies smoothly in [radius/4, radius])",
)
UNDERPAINT = Kind(
    name="underpaint",
    apply=underpaint,
    defaults={"radius": 4.0},
    from_severity=lambda s: {"radius": 12.0 * s},
    options={"fraction": 0.75, "wavelength": 32.0},
    summary="brush strokes that stop short: regions shrink from their boundaries, leaving unlabeled gaps",
    severity_rule="radius = 12 s px (gap varies smoothly in [0, radius])",
)
SCRIBBLE = Kind(
    name="scribble",
    apply=scribble,
    defaults={"erase": 0.5},
    from_severity=lambda s: {"erase": s},
    options={"width": 1, "wavelength": 32.0},
    summary="partial labelling: only strokes through each region are labelled, the rest unlabeled",
    severity_rule="erase = s (share of each region outside the strokes left unlabeled)",
)
BLOBS = Kind(
    name="blobs",
    apply=blobs,
    defaults={"area": 0.2},
    from_severity=lambda s: {"area": 0.5 * s},
    options={"wavelength": 48.0},
    summary="unpainted blobs: smooth random patches the user never painted are left unlabeled",
    severity_rule="area = 0.5 s (fraction of the map covered by blobs): 0 -> 0.5",
)
