"""Per-map random streams and smooth random fields, all drawn on the CPU.

Determinism contract: ``corrupt`` draws exactly one seed per map from the caller's generator (map 0
first), and map i is corrupted with a private CPU generator seeded by its draw. So map i depends only on
the generator state and on i, a batch gives the same maps as one-by-one calls with the same generator,
and every random tensor is made on the CPU and then moved, so CPU and GPU inputs give identical results.
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

_SEED_HIGH = 2**62  # seeds are drawn from [0, 2**62) so they fit every generator's manual_seed


def map_generators(generator: torch.Generator | None, n: int) -> list[torch.Generator]:
    """One private CPU generator per map, seeded by n consecutive single draws from ``generator``."""
    device = generator.device if generator is not None else torch.device("cpu")
    gens = []
    for _ in range(n):  # one draw per map, so a prefix of the batch sees the same seeds
        seed = int(torch.randint(0, _SEED_HIGH, (1,), generator=generator, device=device))
        gens.append(torch.Generator().manual_seed(seed))
    return gens


def uniform(gens: Sequence[torch.Generator], *shape: int) -> Tensor:
    """U[0, 1) draws of ``shape`` for every map: (B, *shape) float32 on the CPU."""
    return torch.stack([torch.rand(shape, generator=g) for g in gens])


def below(gens: Sequence[torch.Generator], p: float, *shape: int) -> Tensor:
    """``uniform(gens, *shape) < p`` without keeping the floats: (B, *shape) bool on the CPU."""
    return torch.stack([torch.rand(shape, generator=g) < p for g in gens])


def uniform_each(gens: Sequence[torch.Generator], counts: Sequence[int]) -> Tensor:
    """``counts[i]`` U[0, 1) draws for map i, concatenated in map order: (sum(counts),) float32."""
    parts = [torch.rand(int(c), generator=g) for g, c in zip(gens, counts)]
    return torch.cat(parts) if parts else torch.zeros(0)


def integers(gens: Sequence[torch.Generator], high: int) -> list[int]:
    """One integer in [0, high) per map."""
    return [int(torch.randint(0, high, (1,), generator=g)) for g in gens]


def smooth_gaussian(gens: Sequence[torch.Generator], channels: int, h: int, w: int, cell: float) -> Tensor:
    """Smooth N(0, ~1) fields: coarse noise every ``cell`` px, bicubic upsampled: (B, C, H, W) float32."""
    cell = max(float(cell), 1.0)
    gh, gw = math.ceil(h / cell) + 4, math.ceil(w / cell) + 4  # 2 spare nodes each side for bicubic
    coarse = torch.stack([torch.randn(channels, gh, gw, generator=g) for g in gens])  # (B, C, gh, gw)
    rows, cols = _upsampler(gh, h, cell), _upsampler(gw, w, cell)  # (H, gh), (W, gw)
    return rows @ coarse @ cols.T / 0.85  # 0.85 ~ std of N(0, 1) nodes after bicubic interpolation


@functools.lru_cache(maxsize=32)
def _upsampler(n_coarse: int, n: int, cell: float) -> Tensor:
    """Bicubic (align_corners) interpolation matrix from ``n_coarse`` nodes ``cell`` px apart: (n, n_coarse).

    Row y holds the weights of fine pixel y, counted from the third node (two spare nodes before it).
    """
    size = round((n_coarse - 1) * cell) + 1
    eye = torch.eye(n_coarse).view(1, 1, n_coarse, n_coarse)
    full = F.interpolate(eye, size=(size, n_coarse), mode="bicubic", align_corners=True)[0, 0]
    start = round(2 * cell)
    return full[start : start + n].contiguous()


def smooth_uniform(gens: Sequence[torch.Generator], h: int, w: int, cell: float) -> Tensor:
    """Smooth fields with roughly uniform [0, 1] marginals (Gaussian CDF of ``smooth_gaussian``): (B, H, W)."""
    z = smooth_gaussian(gens, 1, h, w, cell)[:, 0]
    return 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
