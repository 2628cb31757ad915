"""Boundary-shape errors: a shaky hand (smooth warp) and coarse polygon annotation (vertex grid)."""

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
    oy, ox = phase[:, 0], phase[:, 1]
    cy, fy, vy = _cell_axis(h, k, oy)
    cx, fx, vx = _cell_axis(w, k, ox)
    dev = labels.device
    bi = torch.arange(b, device=dev).view(b, 1, 1)
    vertex = labels[bi, vy.to(dev).view(b, -1, 1), vx.to(dev).view(b, 1, -1)]  # (B, ny+1, nx+1)
    corner = (vertex[:, :-1, :-1], vertex[:, :-1, 1:], vertex[:, 1:, :-1], vertex[:, 1:, 1:])
    code = sum((corner[i] == corner[j]).long() << bit for bit, (i, j) in enumerate(_PAIRS))  # (B, ny, nx)
    cy, cx = cy.to(dev).view(b, h, 1), cx.to(dev).view(b, 1, w)
    offset = fy.to(dev).view(b, h, 1) * k + fx.to(dev).view(b, 1, w)  # (B, H, W) position in the cell
    win = _winner_table(k).to(dev).view(-1)[code[bi, cy, cx] * (k * k) + offset]  # (B, H, W) corner 0..3
    return vertex[bi, cy + (win >> 1), cx + (win & 1)]


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
    """Winning corner for every corner-equality code (6 bits, ``_PAIRS``) and in-cell offset: (64, k, k)."""
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
    return best


SHAKY = Kind(
    name="shaky",
    apply=shaky,
    defaults={"amplitude": 4.0},
    from_severity=lambda s: {"amplitude": 12.0 * s},
    options={"wavelength": 32.0},
    summary="boundaries drawn with a shaky hand: a smooth random displacement field warps the map",
    severity_rule="amplitude = 12 s px (displacement std amplitude/2, capped at amplitude)",
)
POLYGON = Kind(
    name="polygon",
    apply=polygon,
    defaults={"spacing": 8},
    from_severity=lambda s: {"spacing": round_half_up(2 ** (5 * s))},
    summary="coarse polygon annotation: boundaries become straight strokes between sparse vertices",
    severity_rule="spacing = round(2 ** (5 s)) px between vertices: 1 -> 32",
)
