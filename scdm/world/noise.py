"""Value noise from upsampled random grids: the shape and texture primitive of the world."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_PHASES = 4  # sub-cell grid offsets, so noise lattices do not line up across images


@lru_cache(maxsize=512)
def _interp_matrix(n_out: int, cells: int, phase: int) -> np.ndarray:
    """(n_out, cells + 2) smoothstep weights from grid nodes to pixel centres."""
    pos = (np.arange(n_out) + 0.5) / n_out * cells + phase / _PHASES
    i0 = np.floor(pos).astype(np.int64)
    f = pos - i0
    f = f * f * (3.0 - 2.0 * f)
    m = np.zeros((n_out, cells + 2), np.float32)
    m[np.arange(n_out), i0] = 1.0 - f
    m[np.arange(n_out), i0 + 1] = f
    return m


def _cells(cells: float, n_out: int) -> int:
    """Clamp a requested cell count to [1, n_out]."""
    return int(min(max(round(cells), 1), n_out))


def value_noise(rng: np.random.Generator, n: int, shape: tuple[int, int], cells: tuple[float, float]) -> np.ndarray:
    """(n, H, W) smooth noise in [-1, 1]; `cells` = (rows, cols) of random lattice cells across the image."""
    h, w = shape
    cy, cx = _cells(cells[0], h), _cells(cells[1], w)
    my = _interp_matrix(h, cy, int(rng.integers(_PHASES)))
    mx = _interp_matrix(w, cx, int(rng.integers(_PHASES)))
    grid = rng.uniform(-1.0, 1.0, (n, cy + 2, cx + 2)).astype(np.float32)
    return my @ grid @ mx.T  # (n, H, W)


def fractal_noise(
    rng: np.random.Generator,
    n: int,
    shape: tuple[int, int],
    cells: tuple[float, float],
    octaves: int = 3,
    gain: float = 0.5,
) -> np.ndarray:
    """(n, H, W) fractal sum of value-noise octaves (cells doubling), scaled to roughly unit std."""
    out = np.zeros((n, *shape), np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * value_noise(rng, n, shape, (cells[0] * 2**k, cells[1] * 2**k))
        total += amp * amp
        amp *= gain
    return out * np.float32(1.7 / np.sqrt(total))


def noise_1d(rng: np.random.Generator, length: int, cells: float) -> np.ndarray:
    """(length,) smooth noise in [-1, 1] along one axis."""
    c = _cells(cells, length)
    m = _interp_matrix(length, c, int(rng.integers(_PHASES)))
    return m @ rng.uniform(-1.0, 1.0, c + 2).astype(np.float32)


def jagged_1d(rng: np.random.Generator, length: int, peaks: int, roughness: float = 0.55) -> np.ndarray:
    """(length,) ridge profile in [0, 1]: octaves of piecewise-linear noise, sharp peaks (mountains)."""
    x = np.arange(length) + 0.5
    out = np.zeros(length)
    amp, knots = 1.0, peaks + 1
    for _ in range(4):  # octaves: knots double, amplitude shrinks by `roughness`
        pos = np.linspace(0, length, knots + 1)
        pos[1:-1] += rng.uniform(-0.35, 0.35, knots - 1) * (length / knots)
        out += amp * np.interp(x, pos, rng.uniform(-1.0, 1.0, knots + 1))
        amp, knots = amp * roughness, knots * 2
    lo, hi = out.min(), out.max()
    return ((out - lo) / max(hi - lo, 1e-6)).astype(np.float32)
