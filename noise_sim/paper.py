"""The SCDM paper's three label corruptions (docs/method.md §6), exactly as the reference benchmark made them.

- DS: PIL ``Image.resize(..., NEAREST)`` down to the (H // factor, W // factor) grid and back up. The paper
  resized the *original-resolution* annotation straight to 64 x 64 (`image_process/downsample.py`) and its
  loader then 64 -> 256; ``ds_from_original`` does that, ``ds`` starts from the given (already resized) maps.
- Edge: 4-neighbour boundaries (both pixels of a differing pair, SPADE ``get_edges``) of the instance map
  (else the label map), dilated by the diamond |dy| + |dx| <= radius, set to ``unlabeled`` (paper: 2).
- Random: every pixel independently set to ``unlabeled`` with probability ``p`` (paper: 0.1).
"""

from __future__ import annotations

import functools
from typing import Sequence

import torch
from torch import Tensor

from . import morph, rng
from .kind import Kind, check_float, check_int, round_half_up


@functools.lru_cache(maxsize=256)
def pil_nearest_index(n_in: int, n_out: int) -> tuple[int, ...]:
    """Source index of each output pixel of a PIL NEAREST resize (Pillow ``ImagingScaleAffine``)."""
    scale = n_in / n_out  # a[0] = (box[2] - box[0]) / xsize, in double precision
    pos = scale * 0.5  # xo = a[2] + a[0] * 0.5, then xo += a[0] per pixel (accumulated, as Pillow does)
    out = []
    for _ in range(n_out):
        out.append(min(int(pos), n_in - 1))  # COORD(): truncation toward zero for pos >= 0
        pos += scale
    return tuple(out)


def ds(labels: Tensor, *, factor: int, gens: Sequence[torch.Generator], instances: Tensor | None,
       unlabeled: int) -> Tensor:
    """Nearest down to (max(1, H // factor), max(1, W // factor)), then nearest up, with PIL's indexing."""
    return ds_from_original(labels, factor=factor, size=tuple(labels.shape[-2:]))


def ds_from_original(original: Tensor, *, factor: int, size: tuple[int, int]) -> Tensor:
    """The paper's DS map of an annotation at its own size: NEAREST to the grid, then NEAREST up to ``size``.

    ``original``: (..., H0, W0) ids at any size (ADE20K 683 x 512); ``size``: the evaluation (h, w). The grid is
    (max(1, h // factor), max(1, w // factor)), 64 x 64 for factor 4 at 256 px, as the reference made it.
    """
    factor = check_int("factor", factor, 1)
    (h0, w0), (h, w) = original.shape[-2:], size
    hd, wd = max(1, h // factor), max(1, w // factor)
    dev = original.device
    small = original.index_select(-2, _index(h0, hd, dev)).index_select(-1, _index(w0, wd, dev))  # (..., hd, wd)
    return small.index_select(-2, _index(hd, h, dev)).index_select(-1, _index(wd, w, dev))  # one full-size pass


def _index(n_in: int, n_out: int, device: torch.device) -> Tensor:
    """``pil_nearest_index`` as an int64 tensor on ``device``."""
    return torch.tensor(pil_nearest_index(n_in, n_out), device=device)


def edge(labels: Tensor, *, radius: int, gens: Sequence[torch.Generator], instances: Tensor | None,
         unlabeled: int) -> Tensor:
    """Boundaries of ``instances`` (else ``labels``) dilated by the radius-``radius`` diamond -> unlabeled."""
    radius = check_int("radius", radius, 0)
    source = instances if instances is not None else labels
    mask = morph.dilate_diamond(morph.edges4(source), radius)
    return labels.masked_fill(mask, unlabeled)


def random(labels: Tensor, *, p: float, gens: Sequence[torch.Generator], instances: Tensor | None,
           unlabeled: int) -> Tensor:
    """Each pixel set to unlabeled with probability p (one U[0, 1) draw per pixel, row-major per map)."""
    p = check_float("p", p, 0.0, 1.0)
    _, h, w = labels.shape
    mask = rng.below(gens, p, h, w)  # drawn on the CPU so every device sees the same pixels
    return labels.masked_fill(mask.to(labels.device), unlabeled)


DS = Kind(
    name="ds",
    apply=ds,
    defaults={"factor": 4},
    from_severity=lambda s: {"factor": round_half_up(2 ** (5 * s))},
    summary="coarse, blocky drawing: the paper's nearest-neighbour down/up-sampling",
    severity_rule="factor = round(2 ** (5 s)): 1 -> 32",
)
EDGE = Kind(
    name="edge",
    apply=edge,
    defaults={"radius": 2},
    from_severity=lambda s: {"radius": round_half_up(6 * s)},
    summary="unlabeled bands along (instance) boundaries: the paper's Edge setting",
    severity_rule="radius = round(6 s): 0 -> 6 (severity 0 itself is the identity)",
)
RANDOM = Kind(
    name="random",
    apply=random,
    defaults={"p": 0.1},
    from_severity=lambda s: {"p": 0.5 * s},
    summary="scattered unlabeled pixels: the paper's Random setting",
    severity_rule="p = 0.5 s: 0 -> 0.5",
)
