"""Batched exact morphology on label maps: boundaries, dilation, distances, components, per-map id tables.

Every function takes (B, H, W) tensors, works on any device, uses only integer and boolean arithmetic
(so CPU and GPU agree bit for bit) and never loops over pixels in Python.
Notation: "diamond of radius r" = the Manhattan ball {|dy| + |dx| <= r}; "L1" = Manhattan distance;
"steps" alternate 4- and 8-neighbour moves (octagonal balls, close to discs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def edges4(ids: Tensor) -> Tensor:
    """4-neighbour boundary as in SPADE/SDM ``get_edges``: both pixels of every differing pair: (B, H, W) bool."""
    edge = torch.zeros(ids.shape, dtype=torch.bool, device=ids.device)
    horizontal = ids[:, :, 1:] != ids[:, :, :-1]  # (B, H, W-1)
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    vertical = ids[:, 1:, :] != ids[:, :-1, :]  # (B, H-1, W)
    edge[:, 1:, :] |= vertical
    edge[:, :-1, :] |= vertical
    return edge


def dilate_diamond(mask: Tensor, radius: int) -> Tensor:
    """Dilation of a (B, H, W) bool mask by the diamond of ``radius`` (r steps of the 4-neighbour cross)."""
    if radius > 16:  # beyond a few steps one distance transform is cheaper than r cross steps
        return l1_distance(mask) <= radius
    out = mask
    for _ in range(radius):
        out = _cross(out)
    return out.clone() if radius == 0 else out


def _cross(x: Tensor) -> Tensor:
    """One 4-neighbour step: each pixel OR-ed (bool) or max-ed (integers) with up/down/left/right."""
    out = x.clone()
    for dst, src in (
        (out[:, 1:, :], x[:, :-1, :]), (out[:, :-1, :], x[:, 1:, :]),
        (out[:, :, 1:], x[:, :, :-1]), (out[:, :, :-1], x[:, :, 1:]),
    ):
        _combine(dst, src)
    return out


def _square(x: Tensor) -> Tensor:
    """One 8-neighbour step (3 x 3 max), done separably: rows, then columns."""
    rows = x.clone()
    _combine(rows[:, :, 1:], x[:, :, :-1])
    _combine(rows[:, :, :-1], x[:, :, 1:])
    out = rows.clone()
    _combine(out[:, 1:, :], rows[:, :-1, :])
    _combine(out[:, :-1, :], rows[:, 1:, :])
    return out


def _combine(dst: Tensor, src: Tensor) -> None:
    """dst <- dst OR src (bool) or max(dst, src) (integers), in place."""
    if dst.dtype == torch.bool:
        dst |= src
    else:
        torch.maximum(dst, src, out=dst)


def step_distance(mask: Tensor, cap: int) -> Tensor:
    """Steps to the nearest True pixel, capped at ``cap``: (B, H, W) uint8 (int16 for cap > 255).

    Steps alternate 4- and 8-neighbour moves, as in ``spread_max``, so the balls are octagons (near-discs)
    rather than L1 diamonds.
    """
    dist = torch.zeros(mask.shape, dtype=torch.uint8 if cap < 256 else torch.int16, device=mask.device)
    reached = mask
    for k in range(cap):  # dist counts the steps at which the pixel is still unreached
        if k:
            reached = _cross(reached) if k % 2 else _square(reached)
        dist += ~reached
    return dist


def spread_max(values: Tensor, steps: Tensor) -> Tensor:
    """Grow the larger values into their neighbours, one step at a time, where ``steps`` allows.

    Steps alternate 4- and 8-neighbour moves (octagonal balls, close to discs). Step k updates a pixel
    to the max over its neighbourhood only if k <= steps there, so a value travels up to ``steps`` steps
    along accepting pixels. More steps never lower any pixel.
    """
    most = int(steps.max()) if steps.numel() else 0
    for k in range(1, most + 1):
        grown = _cross(values) if k % 2 else _square(values)
        values = torch.where(steps >= k, grown, values)
    return values


def _row_pass(mask: Tensor, big: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Per row: L1 distance to the nearest True pixel of that row and its column (ties: the left one)."""
    _, _, w = mask.shape
    j = torch.arange(w, device=mask.device, dtype=dtype)
    left = torch.where(mask, j, -big).cummax(dim=2).values  # last True column <= j (or -big)
    right = torch.where(mask, j, w + big).flip(2).cummin(dim=2).values.flip(2)  # first True column >= j
    d_left, d_right = j - left, right - j
    take_left = d_left <= d_right
    dist = torch.where(take_left, d_left, d_right).clamp_(max=big)
    return dist, torch.where(take_left, left, right)


def _dtype_for(h: int, w: int) -> tuple[int, torch.dtype]:
    """Sentinel distance larger than any in-map distance, and the narrowest dtype holding the pass values."""
    big = h + w
    return big, (torch.int16 if 3 * big + h < 2**15 else torch.int32)


def l1_distance(mask: Tensor) -> Tensor:
    """L1 distance from every pixel to the nearest True pixel of its map (dtype max if none): (B, H, W) int."""
    _, h, w = mask.shape
    big, dtype = _dtype_for(h, w)
    g, _ = _row_pass(mask, big, dtype)  # (B, H, W) row distances
    g = g.transpose(1, 2).contiguous()  # (B, W, H): scans run fastest along the last dim
    i = torch.arange(h, device=mask.device, dtype=dtype)
    # L1 is separable: d[i] = min_k g[k] + |i - k|, split into k <= i (forward) and k >= i (backward)
    forward = (g - i).cummin(dim=2).values.add_(i)
    backward = (g + i).flip(2).cummin(dim=2).values.flip(2).sub_(i)
    dist = torch.minimum(forward, backward).clamp_(max=big).transpose(1, 2).contiguous()
    return dist.masked_fill_(_empty(mask), torch.iinfo(dist.dtype).max)


def _empty(mask: Tensor) -> Tensor:
    """(B, 1, 1) bool: maps without a single True pixel."""
    return ~mask.flatten(1).any(1).view(-1, 1, 1)


def l1_nearest(mask: Tensor) -> tuple[Tensor, Tensor]:
    """L1 distance to the nearest True pixel and that pixel's flat index in its map (Manhattan feature transform).

    Ties are broken the same way on every device (nearer row first, then the row above, then the left column).
    Maps with no True pixel get the dtype's largest distance and index 0.
    """
    b, h, w = mask.shape
    big, _ = _dtype_for(h, w)
    dtype = torch.int32 if (3 * big + h) * 2 * (h + 1) < 2**31 else torch.int64
    g, col = _row_pass(mask, big, dtype)
    s = 1 << max(h - 1, 1).bit_length()  # radix > any row index, used to encode (value, row) in one integer
    k = torch.arange(h, device=mask.device, dtype=dtype).view(1, h, 1)
    # forward: minimise g[k] - k over k <= i, ties -> largest k (nearest row)
    key_f = (g - k + h) * s + (s - 1 - k)
    key_f = key_f.cummin(dim=1).values
    row_f = s - 1 - key_f % s
    dist_f = key_f // s - h + k
    # backward: minimise g[k] + k over k >= i, ties -> smallest k (nearest row)
    key_b = ((g + k) * s + k).flip(1).cummin(dim=1).values.flip(1)
    row_b = key_b % s
    dist_b = key_b // s - k
    take_f = dist_f <= dist_b
    dist = torch.where(take_f, dist_f, dist_b).clamp_(max=big)
    row = torch.where(take_f, row_f, row_b).long()
    column = col.gather(1, row).long()  # nearest column within the chosen row
    empty = _empty(mask)
    index = (row * w + column).masked_fill_(empty, 0)
    return dist.masked_fill_(empty, torch.iinfo(dist.dtype).max), index


def take(values: Tensor, index: Tensor) -> Tensor:
    """values[b, index[b, y, x]] for per-map flat indices: (B, H, W) -> (B, H, W)."""
    b = values.shape[0]
    return values.reshape(b, -1).gather(1, index.reshape(b, -1)).view(index.shape)


@dataclass(frozen=True)
class Components:
    """4-connected components of equal ids, stored per row run (maximal horizontal run of one id).

    Runs are numbered in raster order over the whole batch; a component is named by its first run, so
    component names are ordered like the raster position of each component's first pixel.
    """

    run: Tensor  # (B, H, W) int64: run of each pixel
    root: Tensor  # (R,) int64: component (= smallest run number in it) of each run
    length: Tensor  # (R,) int64: pixels in each run
    start: Tensor  # (R,) int64: flat index (over the batch) of each run's first pixel
    batch: Tensor  # (R,) int64: map of each run

    def pixel_components(self) -> Tensor:
        """Component name of every pixel: (B, H, W) int64."""
        return self.root[self.run]

    def areas(self) -> Tensor:
        """Pixel count of each run's component: (R,) int64."""
        total = torch.zeros_like(self.length).index_add_(0, self.root, self.length)
        return total[self.root]

    def names(self) -> Tensor:
        """Component names in raster order over the batch: (C,) int64."""
        return torch.nonzero(self.root == torch.arange(len(self.root), device=self.root.device))[:, 0]


def connected_components(ids: Tensor) -> Components:
    """4-connected components of equal ids (run-length union-find with pointer jumping, all batched)."""
    b, h, w = ids.shape
    starts = torch.ones(ids.shape, dtype=torch.bool, device=ids.device)
    starts[:, :, 1:] = ids[:, :, 1:] != ids[:, :, :-1]  # (B, H, W) a run begins here
    run = torch.cumsum(starts.view(-1), 0).sub_(1).view(b, h, w)
    n_runs = int(run.view(-1)[-1]) + 1 if run.numel() else 0
    # Two vertically adjacent runs of one id overlap iff they touch at the start column of one of them.
    link = ids[:, 1:, :] == ids[:, :-1, :]  # (B, H-1, W)
    link &= starts[:, 1:, :] | starts[:, :-1, :]
    where = torch.nonzero(link)  # (E, 3): b, y, x of the upper pixel
    upper = run[where[:, 0], where[:, 1], where[:, 2]]
    lower = run[where[:, 0], where[:, 1] + 1, where[:, 2]]
    root = torch.arange(n_runs, device=ids.device)
    while upper.numel():
        ru, rl = root[upper], root[lower]
        lo, hi = torch.minimum(ru, rl), torch.maximum(ru, rl)
        active = lo != hi
        if not bool(active.any()):
            break
        upper, lower = upper[active], lower[active]  # satisfied links stay satisfied
        root.scatter_reduce_(0, hi[active], lo[active], reduce="amin")  # hook the larger root
        while True:  # pointer jumping until every run points at a root
            jumped = root[root]
            if torch.equal(jumped, root):
                break
            root = jumped
    flat_starts = torch.nonzero(starts.view(-1))[:, 0]
    length = torch.diff(flat_starts, append=torch.tensor([ids.numel()], device=ids.device))
    return Components(run=run, root=root, length=length, start=flat_starts, batch=flat_starts // (h * w))


def class_table(ids: Tensor, exclude: int | None = None) -> Tensor:
    """Which ids occur in each map: (B, M) bool indexed by raw id, M = max id + 1 (``exclude`` never set)."""
    b = ids.shape[0]
    m = int(ids.max()) + 1 if ids.numel() else 1
    present = torch.zeros(b, m, dtype=torch.bool, device=ids.device)
    present.scatter_(1, ids.reshape(b, -1), True)
    if exclude is not None and 0 <= exclude < m:
        present[:, exclude] = False
    return present


def lookup(table: Tensor, ids: Tensor) -> Tensor:
    """Per-map table lookup ``table[b, ids[b, y, x]]``: (B, M) and (B, H, W) -> (B, H, W)."""
    b = ids.shape[0]
    return table.gather(1, ids.reshape(b, -1)).view(ids.shape)
