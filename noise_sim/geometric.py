"""Boundary-shape errors: a shaky hand (local wobble), a global elastic warp, coarse polygons (vertex grid).

``shaky`` and ``warp`` both resample the map along a smooth random displacement field d (nearest):
out(p) = in(round(p + d(p))). ``shaky`` varies d every ``wavelength`` px (32), so each stretch of a boundary
wobbles on its own; ``warp`` varies it over the whole map (``cells`` control cells per side, 2), so whole
objects shift, stretch and bend together, and caps its length |d| at ``amplitude``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
from torch import Tensor

from . import morph, rng
from .kind import Kind, check_float, check_int, round_half_up


def shaky(labels: Tensor, *, amplitude: float, wavelength: float, gens: Sequence[torch.Generator],
          instances: Tensor | None, unlabeled: int) -> Tensor:
    """Warp by a smooth random displacement field (nearest): out(p) = in(round(p + d(p)))."""
    amplitude = check_float("amplitude", amplitude, 0.0)
    wavelength = check_float("wavelength", wavelength, 1.0)
    b, h, w = labels.shape
    field = rng.smooth_gaussian(gens, 2, h, w, wavelength)  # (B, 2, H, W) ~N(0, 1), on the CPU
    shift = field.mul_(amplitude / 2).clamp_(-amplitude, amplitude)  # std amplitude/2, capped at amplitude
    return _displace(labels, shift)


def warp(labels: Tensor, *, amplitude: float, cells: int, gens: Sequence[torch.Generator],
         instances: Tensor | None, unlabeled: int) -> Tensor:
    """Global elastic warp: a smooth field over ``cells`` control cells per side, |d| <= ``amplitude`` (nearest)."""
    amplitude = check_float("amplitude", amplitude, 0.0)
    cells = check_int("cells", cells, 1)
    b, h, w = labels.shape
    field = rng.smooth_gaussian(gens, 2, h, w, max(h, w) / cells)  # (B, 2, H, W) ~N(0, 1), on the CPU
    shift = field.mul_(amplitude / 2)  # std amplitude/2 per axis ...
    length = torch.hypot(shift[:, 0], shift[:, 1]).clamp_(min=1e-12)  # (B, H, W)
    shift *= (amplitude / length).clamp_(max=1.0).unsqueeze(1)  # ... length capped at amplitude
    return _displace(labels, shift)


def _displace(labels: Tensor, shift: Tensor) -> Tensor:
    """out(p) = labels(round(p + shift(p))), clamped to the map: (B, H, W) and (B, 2, H, W) float (y, x) shifts."""
    _, h, w = labels.shape
    ys = (torch.arange(h).view(1, h, 1) + shift[:, 0]).round_().clamp_(0, h - 1).long()
    xs = (torch.arange(w).view(1, 1, w) + shift[:, 1]).round_().clamp_(0, w - 1).long()
    return morph.take(labels, (ys * w + xs).to(labels.device))


_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))  # corner pairs; corners: 0 TL, 1 TR, 2 BL, 3 BR


def polygon(labels: Tensor, *, spacing: int, gens: Sequence[torch.Generator], instances: Tensor | None,
            unlabeled: int) -> Tensor:
    """Redraw boundaries as straight strokes between vertices on a randomly shifted ``spacing`` grid.

    Every vertex keeps its label; a pixel inside a grid cell takes the corner label with the largest
    bilinear weight summed over the corners sharing that label (exact integers; ties: TL, TR, BL, BR).
    """
    k = check_int("spacing", spacing, 1)
    b, h, w = labels.shape
    if k == 1:
        return labels.clone()  # every pixel is a vertex
    phase = (rng.uniform(gens, 2) * k).long()  # (B, 2) grid phase in [0, k), scaled with the spacing
    cy, fy, vy = _cell_axis(h, k, phase[:, 0])
    cx, fx, vx = _cell_axis(w, k, phase[:, 1])
    dev = labels.device
    cy, fy, vy, cx, fx, vx = (t.to(dev) for t in (cy, fy, vy, cx, fx, vx))
    ny, nx = vy.shape[1], vx.shape[1]  # vertices per axis
    vertex = labels.gather(1, vy.view(b, ny, 1).expand(b, ny, w)).gather(2, vx.view(b, 1, nx).expand(b, ny, nx))
    corner = (vertex[:, :-1, :-1], vertex[:, :-1, 1:], vertex[:, 1:, :-1], vertex[:, 1:, 1:])  # (B, ny-1, nx-1)
    code = sum((corner[i] == corner[j]).to(torch.uint8) << bit for bit, (i, j) in enumerate(_PAIRS))
    code = code.gather(1, cy.view(b, h, 1).expand(b, h, nx - 1))  # (B, H, nx-1): the cell row of each pixel
    code = code.gather(2, cx.view(b, 1, w).expand(b, h, w))  # (B, H, W) corner-equality code of its cell
    offset = (fy.view(b, h, 1) * k + fx.view(b, 1, w)).int()  # (B, H, W) position inside the cell
    pick = _winner_table(k).to(dev).index_select(0, (code.int() * (k * k) + offset).view(-1)).view(b, h, w)
    # the winning vertex is (cy + dy, cx + dx); pick = 2 dx + dy indexes the interleaved rows below
    rows = torch.stack([vertex.gather(1, (cy + dy).view(b, h, 1).expand(b, h, nx)) for dy in (0, 1)], -1)
    return rows.view(b, h, 2 * nx).gather(2, 2 * cx.view(b, 1, w) + pick)


def _cell_axis(n: int, k: int, offset: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per map along one axis: cell of each pixel, offset in the cell, and vertex positions (clamped)."""
    pos = torch.arange(n).view(1, n)
    cell = torch.div(pos - offset.view(-1, 1), k, rounding_mode="floor") + 1  # vertex i at offset + k (i - 1)
    frac = pos - (offset.view(-1, 1) + k * (cell - 1))  # in [0, k)
    n_vertices = (n - 1) // k + 3  # enough for every phase
    vertex = (offset.view(-1, 1) + k * (torch.arange(n_vertices).view(1, -1) - 1)).clamp(0, n - 1)
    return cell, frac, vertex


@functools.lru_cache(maxsize=64)
def _winner_table(k: int) -> Tensor:
    """Winning corner as 2 dx + dy for every corner-equality code (6 bits, ``_PAIRS``) and in-cell offset.

    (64 * k * k,) int64, indexed by code * k^2 + fy * k + fx.
    """
    code = torch.arange(64).view(64, 1, 1)
    fy, fx = torch.arange(k).view(1, k, 1), torch.arange(k).view(1, 1, k)
    weight = ((k - fy) * (k - fx), (k - fy) * fx, fy * (k - fx), fy * fx)  # bilinear, times k^2
    same = {pair: (code >> bit) & 1 for bit, pair in enumerate(_PAIRS)}
    best, best_score = torch.zeros(64, k, k, dtype=torch.int64), None
    for i in range(4):
        score = weight[i] + sum(weight[j] * same[min(i, j), max(i, j)] for j in range(4) if j != i)
        if best_score is None:
            best_score = score
        else:
            better = score > best_score  # ties keep the earlier corner
            best = torch.where(better, i, best)
            best_score = torch.where(better, score, best_score)
    dy, dx = best // 2, best % 2  # corners 0 TL, 1 TR, 2 BL, 3 BR
    return (2 * dx + dy).view(-1)


SHAKY = Kind(
    name="shaky",
    apply=shaky,
    defaults={"amplitude": 4.0},
    from_severity=lambda s: {"amplitude": 12.0 * s},
    options={"wavelength": 32.0},
    summary="boundaries drawn with a shaky hand: a smooth random displacement field warps the map",
    severity_rule="amplitude = 12 s px (displacement std amplitude/2, capped at amplitude)",
)
WARP = Kind(
    name="warp",
    apply=warp,
    defaults={"amplitude": 8.0},
    from_severity=lambda s: {"amplitude": 16.0 * s},
    options={"cells": 2},
    summary="a globally warped map: a smooth elastic deformation moves every boundary by up to amplitude px",
    severity_rule="amplitude = 16 s px (displacement std amplitude/2 per axis, length capped at amplitude)",
)
POLYGON = Kind(
    name="polygon",
    apply=polygon,
    defaults={"spacing": 8},
    from_severity=lambda s: {"spacing": round_half_up(2 ** (5 * s))},
    summary="coarse polygon annotation: boundaries become straight strokes between sparse vertices",
    severity_rule="spacing = round(2 ** (5 s)) px between vertices: 1 -> 32",
)
