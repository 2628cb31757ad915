"""Scene layout: sky, horizon, mountains, ground bands, water, roads, flowers, then objects far to near."""

# Notation: S -> image size, u -> one pixel at 64 px (S / 64), horizon -> (S,) horizon row per column,
# t -> perspective depth in [0, 1] (0 at the horizon, 1 at the bottom row), scale -> object size factor.

from __future__ import annotations

from typing import Callable

import numpy as np

from .classes import BUILDING, FIELD, FLOWER, GRASS, MOUNTAIN, ROAD, ROCK, SAND, SIDEWALK, SKY, TREE, WATER
from .noise import jagged_1d, noise_1d, value_noise

_LAND = np.zeros(256, bool)
_LAND[[GRASS, FIELD, SAND, SIDEWALK]] = True  # where buildings and trees may stand
_ROCKY = _LAND.copy()
_ROCKY[WATER] = True  # rocks may also stick out of water

Shape = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (rows (h,1), cols (1,w)) -> mask (h, w)
Box = tuple[float, float, float, float]  # (top, bottom, left, right) bounds of a shape, in pixels
Obj = tuple[float, int, Shape, Box]  # (base row, class, shape, box): an object waiting to be painted


def _axes(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre row (S, 1) and column (1, S) coordinates."""
    c = np.arange(size, dtype=np.float32) + 0.5
    return c[:, None], c[None, :]


def _mountains(rng: np.random.Generator, label: np.ndarray, horizon: np.ndarray, u: float) -> None:
    """Paint one or two jagged ridge layers between the sky and the horizon."""
    size = label.shape[0]
    ys, _ = _axes(size)
    room = float(horizon.min()) - 2 * u  # keep some sky above the highest peak
    layers = 2 if rng.random() < 0.4 else 1
    for k in range(layers):  # far layer first: taller, with more peaks
        height = min(room, size * rng.uniform(0.1, 0.3) * (1.35 if k < layers - 1 else 1.0))
        peaks = int(rng.integers(1, 5)) + (layers - 1 - k)
        profile = 0.15 + 0.85 * jagged_1d(rng, size, peaks, roughness=rng.uniform(0.4, 0.65))
        if rng.random() < 0.35:  # a range that covers only part of the horizon
            profile *= np.clip(1.6 * noise_1d(rng, size, 1.5) + rng.uniform(0.2, 0.8), 0, 1)
        lift = height * profile
        lift[lift < 2 * u] = 0.0
        label[(ys >= horizon - lift) & (ys < horizon)] = MOUNTAIN


def _ground_bands(rng: np.random.Generator, label: np.ndarray, ground: np.ndarray, horizon: np.ndarray, u: float) -> None:
    """Fill the ground with 1-3 bands of grass / field / sand split by wavy, sloped boundaries."""
    size = label.shape[0]
    ys, xs = _axes(size)
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    kinds = np.array([GRASS, FIELD, SAND])
    classes = []
    for _ in range(n):
        p = np.array([0.55, 0.27, 0.18])
        if classes:
            p[kinds == classes[-1]] = 0.0
        classes.append(int(rng.choice(kinds, p=p / p.sum())))
    band = np.zeros(label.shape, np.int64)
    for b in np.sort(rng.uniform(float(horizon.max()) + 3 * u, size - 3 * u, n - 1)):
        slope = rng.uniform(-0.45, 0.45) if rng.random() < 0.6 else 0.0
        line = b + slope * (xs - size / 2) + 2.5 * u * noise_1d(rng, size, rng.uniform(2, 5))
        band += ys >= line
    np.copyto(label, np.asarray(classes, np.uint8)[band], where=ground)


def _strip(
    rng: np.random.Generator, horizon: np.ndarray, w_far: float, w_near: float, meander: float
) -> tuple[np.ndarray, np.ndarray]:
    """Signed offset from a strip's centre line and its half width, for a strip receding to the horizon."""
    size = horizon.size
    ys, xs = _axes(size)
    t = np.clip((ys - horizon) / (size - horizon), 0.0, 1.0)
    vx = size * rng.uniform(0.15, 0.85)  # vanishing point on the horizon
    bx = size * rng.uniform(-0.1, 1.1)  # where the strip leaves the bottom edge
    wave = meander * size * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + rng.uniform(0, 2 * np.pi)) * t
    centre = vx + (bx - vx) * t + wave
    return xs - centre, (w_far + (w_near - w_far) * t) / 2


def _water(
    rng: np.random.Generator, kind: str, label: np.ndarray, ground: np.ndarray, horizon: np.ndarray, u: float
) -> None:
    """Paint a sea band, a lake or a river, maybe with a sandy shore."""
    size = label.shape[0]
    ys, xs = _axes(size)
    if kind == "sea":  # sea or wide lake along the horizon
        depth = max(3 * u, (size - horizon.max()) * rng.uniform(0.1, 0.45))
        shore = horizon + depth + 2 * u * noise_1d(rng, size, rng.uniform(2, 6))
        if rng.random() < 0.6:
            beach = shore + max(2.5 * u, size * rng.uniform(0.04, 0.15))
            label[ground & (ys < beach)] = SAND
        label[ground & (ys < shore)] = WATER
    elif kind == "lake":  # lake: a flattened wobbly ellipse
        cy = float(horizon.mean()) + (size - horizon.mean()) * rng.uniform(0.15, 0.65)
        t = (cy - horizon.mean()) / (size - horizon.mean())
        rx = size * rng.uniform(0.15, 0.45)
        ry = max(2.5 * u, rx * rng.uniform(0.15, 0.3) * (0.6 + t))
        e = ((xs - size * rng.uniform(0.15, 0.85)) / rx) ** 2 + ((ys - cy) / ry) ** 2
        e = e + 0.35 * value_noise(rng, 1, label.shape, (4, 4))[0]
        if rng.random() < 0.4:
            label[ground & (e < rng.uniform(1.4, 2.2))] = SAND
        label[ground & (e < 1.0)] = WATER
    elif kind == "river":  # river winding towards the horizon
        dx, half = _strip(rng, horizon, 2.5 * u, size * rng.uniform(0.15, 0.45), rng.uniform(0.0, 0.12))
        if rng.random() < 0.35:
            label[ground & (np.abs(dx) < half * 1.35 + 1.5 * u)] = SAND
        label[ground & (np.abs(dx) < half)] = WATER


def _roads(rng: np.random.Generator, label: np.ndarray, ground: np.ndarray, horizon: np.ndarray, u: float) -> str:
    """Paint a receding road, a crossing road, or a footpath, with sidewalks; return which."""
    size = label.shape[0]
    ys, xs = _axes(size)
    r = rng.random()
    if r < 0.3:  # road receding to the horizon
        dx, half = _strip(rng, horizon, 2 * u, size * rng.uniform(0.3, 0.75), rng.uniform(0.0, 0.05))
        if rng.random() < 0.65:
            walk = half + np.maximum(2 * u, half * rng.uniform(0.3, 0.6))
            side = rng.choice([-1, 0, 1], p=[0.2, 0.6, 0.2])  # left only, both, right only
            reach = np.abs(dx) < walk if side == 0 else (np.abs(dx) < walk) & (dx * side > 0)
            label[ground & reach] = SIDEWALK
        label[ground & (np.abs(dx) < half)] = ROAD
        return "receding"
    if r < 0.47:  # road crossing the view
        yr = rng.uniform(float(horizon.max()) + 4 * u, size - 4 * u)
        t = (yr - horizon.mean()) / (size - horizon.mean())
        half = max(1.5 * u, size * rng.uniform(0.04, 0.11) * (0.4 + t))
        dy = ys - (yr + rng.uniform(-0.15, 0.15) * (xs - size / 2))
        if rng.random() < 0.65:
            walk = max(2 * u, half * rng.uniform(0.5, 0.9))
            below = walk if rng.random() < 0.5 else 0.0
            label[ground & (dy > -half - walk) & (dy < half + below)] = SIDEWALK
        label[ground & (np.abs(dy) < half)] = ROAD
        return "crossing"
    if r < 0.57:  # paved footpath
        dx, half = _strip(rng, horizon, 2 * u, size * rng.uniform(0.1, 0.25), rng.uniform(0.0, 0.1))
        label[ground & (np.abs(dx) < half)] = SIDEWALK
        return "path"
    return "none"


def _flowers(rng: np.random.Generator, label: np.ndarray, horizon: np.ndarray, u: float) -> None:
    """Scatter a few clusters of small flower blobs inside grass."""
    size = label.shape[0]
    grass = np.flatnonzero(label == GRASS)
    if grass.size < 20 or rng.random() > 0.55:
        return
    ys, xs = _axes(size)
    for flat in rng.choice(grass, int(rng.integers(1, 5))):
        cy, cx = flat // size + 0.5, flat % size + 0.5
        t = np.clip((cy - horizon[int(cx)]) / (size - horizon[int(cx)]), 0, 1)
        spread = u * rng.uniform(2, 7) * (0.4 + t)
        blobs = rng.normal(0.0, 1.0, (int(rng.integers(2, 8)), 2)) * spread * np.array([0.5, 1.0]) + (cy, cx)
        radius = u * rng.uniform(1.3, 2.4, len(blobs)) * (0.6 + 0.6 * t)
        y0, y1 = int(max(cy - 3 * spread - 3 * u, 0)), int(min(cy + 3 * spread + 3 * u, size))
        x0, x1 = int(max(cx - 3 * spread - 3 * u, 0)), int(min(cx + 3 * spread + 3 * u, size))
        wy, wx = ys[y0:y1], xs[:, x0:x1]
        patch = np.zeros((y1 - y0, x1 - x0), bool)
        for (by, bx), rb in zip(blobs, radius):
            patch |= ((wy - by) / (0.75 * rb)) ** 2 + ((wx - bx) / rb) ** 2 < 1.0
        win = label[y0:y1, x0:x1]
        win[patch & (win == GRASS)] = FLOWER


def _wobble(rng: np.random.Generator, amount: float) -> tuple[float, ...]:
    """Random angular harmonics (frequencies, phases, amplitude) for _wobbly_ellipse."""
    k, ph = rng.integers(3, 7, 2), rng.uniform(0, 2 * np.pi, 2)
    return (float(k[0]), float(k[1]), float(ph[0]), float(ph[1]), amount)


def _wobbly_ellipse(dy: np.ndarray, dx: np.ndarray, ry: float, rx: float, wobble: tuple[float, ...]) -> np.ndarray:
    """Mask of an ellipse whose radius varies with angle (crowns, rocks)."""
    k0, k1, ph0, ph1, amount = wobble
    theta = np.arctan2(dy, dx)
    rho = 1.0 + amount * (0.6 * np.sin(k0 * theta + ph0) + 0.4 * np.sin(k1 * theta + ph1))
    return (dy / ry) ** 2 + (dx / rx) ** 2 < rho * rho


def _tree(rng: np.random.Generator, yb: float, xc: float, scale: float, u: float, size: int) -> tuple[Shape, Box]:
    """A deciduous (ellipse crowns) or conifer (tiered triangle) tree standing at (yb, xc), with trunk."""
    r = max(2.0 * u, size * rng.uniform(0.035, 0.1) * scale)
    trunk_w = max(2.0 * u, r * rng.uniform(0.18, 0.3))
    if rng.random() < 0.65:
        ry = r * rng.uniform(0.9, 1.35)
        trunk_h = ry * rng.uniform(0.25, 0.7)
        cy = yb - trunk_h - 0.9 * ry
        lobes = [(cy, xc, ry, r)] + [
            (cy + rng.uniform(-0.3, 0.4) * ry, xc + s * rng.uniform(0.4, 0.7) * r, ry * 0.7, r * 0.7)
            for s in rng.choice([-1, 1], int(rng.choice([0, 1, 2], p=[0.6, 0.25, 0.15])), replace=False)
        ]
        amount = rng.uniform(0.05, 0.2)
        shapes = [(ly, lx, lry, lrx, _wobble(rng, amount)) for ly, lx, lry, lrx in lobes]

        def crown(wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
            m = np.zeros(np.broadcast_shapes(wy.shape, wx.shape), bool)
            for ly, lx, lry, lrx, wob in shapes:
                m |= _wobbly_ellipse(wy - ly, wx - lx, lry, lrx, wob)
            return m

        top = cy - 1.5 * ry
        half = 2.2 * r
    else:
        height = r * rng.uniform(2.4, 3.8)
        trunk_h = max(1.5 * u, height * rng.uniform(0.06, 0.16))
        top = yb - trunk_h - height
        tier = height / rng.uniform(3, 5.5)

        def crown(wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
            d = np.clip(wy - top, 0, None)
            teeth = 0.65 + 0.35 * ((d / tier) % 1.0)
            return (wy >= top) & (wy < yb - trunk_h + 0.5 * u) & (np.abs(wx - xc) < r * (d / height) * teeth + 0.5 * u)

        half = 1.2 * r

    def shape(wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
        trunk = (wy >= yb - trunk_h - u) & (wy < yb) & (np.abs(wx - xc) < trunk_w / 2)
        return crown(wy, wx) | trunk

    return shape, (top, yb, xc - half, xc + half)


def _building(rng: np.random.Generator, yb: float, x0: float, w: float, h: float, u: float) -> tuple[Shape, Box]:
    """A rectangular building standing on row yb, maybe with a pitched roof."""
    roof_h = w * rng.uniform(0.25, 0.55) if rng.random() < 0.5 else 0.0
    eave = u * rng.uniform(0.0, 1.2)
    xc, top = x0 + w / 2, yb - h

    def shape(wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
        m = (wy >= top) & (wy < yb) & (wx >= x0) & (wx < x0 + w)
        if roof_h > 0:
            m |= (wy >= top - roof_h) & (wy < top) & (np.abs(wx - xc) <= (w / 2 + eave) * (wy - top + roof_h) / roof_h)
        return m

    return shape, (top - roof_h, yb, x0 - eave, x0 + w + eave)


def _rock(rng: np.random.Generator, yb: float, xc: float, scale: float, u: float, size: int) -> tuple[Shape, Box]:
    """A small boulder: a wobbly ellipse with a flattened base resting on row yb."""
    rx = max(1.6 * u, size * rng.uniform(0.02, 0.055) * scale)
    ry = max(1.4 * u, rx * rng.uniform(0.55, 0.85))
    cy = yb - 0.55 * ry
    wob = _wobble(rng, rng.uniform(0.08, 0.25))

    def shape(wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
        return _wobbly_ellipse(wy - cy, wx - xc, ry, rx, wob) & (wy < yb)

    return shape, (cy - 1.3 * ry, yb, xc - 1.3 * rx, xc + 1.3 * rx)


def _pick(
    rng: np.random.Generator, label: np.ndarray, allowed: np.ndarray, n: int, max_row: float | None = None
) -> list[tuple[float, float]]:
    """Up to n random pixel positions (row, col) whose class is allowed, above max_row."""
    ok = allowed[label]
    if max_row is not None:
        ok[int(max(max_row, 0)):] = False
    flat = np.flatnonzero(ok)
    if flat.size == 0:
        return []
    size = label.shape[1]
    picks = rng.choice(flat, n)
    jitter = rng.uniform(0.0, 1.0, (n, 2)) * (0.7, 1.0) + (0.3, 0.0)  # stay inside the picked pixel
    return [(float(p // size + dy), float(p % size + dx)) for p, (dy, dx) in zip(picks, jitter)]


def _objects(rng: np.random.Generator, label: np.ndarray, horizon: np.ndarray, u: float, road: str) -> list[Obj]:
    """Sample buildings, trees and rocks as (base row, class, shape, bbox), not yet painted."""
    size = label.shape[0]
    hz = float(horizon.mean())

    def scale(y: float) -> float:
        return 0.35 + 0.9 * min(max((y - hz) / (size - hz), 0.0), 1.0)

    objs = []
    if rng.random() < (0.6 if road != "none" else 0.25):
        limit = hz + 0.6 * (size - hz)
        if rng.random() < 0.45:  # a row of houses
            for yb, x in _pick(rng, label, _LAND, 1, limit):
                s, x = scale(yb), x - size * rng.uniform(0.05, 0.3)
                for _ in range(int(rng.integers(2, 6))):
                    w = max(4 * u, size * rng.uniform(0.08, 0.2) * s)
                    h = max(4 * u, size * rng.uniform(0.1, 0.35) * s)
                    objs.append((yb, BUILDING, *_building(rng, yb + rng.uniform(0, u), x, w, h, u)))
                    x += w + rng.uniform(0, 2.5 * u)
        else:
            for yb, x in _pick(rng, label, _LAND, int(rng.integers(1, 4)), limit):
                s = scale(yb)
                w = max(4 * u, size * rng.uniform(0.1, 0.28) * s)
                h = max(4 * u, size * rng.uniform(0.12, 0.4) * s)
                objs.append((yb, BUILDING, *_building(rng, yb, x - w / 2, w, h, u)))
    if rng.random() < 0.62:
        for yb, x in _pick(rng, label, _LAND, int(rng.integers(1, 9))):
            objs.append((yb, TREE, *_tree(rng, yb, x, scale(yb), u, size)))
    if rng.random() < 0.2:  # tree line along the horizon
        n = int(rng.integers(5, 15))
        x0 = rng.uniform(-0.2, 0.7) * size
        for x in np.sort(x0 + rng.uniform(0, size * rng.uniform(0.3, 0.8), n)):
            yb = horizon[int(np.clip(x, 0, size - 1))] + rng.uniform(0.5, 2.5) * u
            if yb < size and _LAND[label[int(yb), int(np.clip(x, 0, size - 1))]]:
                objs.append((yb, TREE, *_tree(rng, yb, x, 0.45, u, size)))
    if rng.random() < 0.42:
        for yb, x in _pick(rng, label, _ROCKY, int(rng.integers(1, 6))):
            objs.append((yb, ROCK, *_rock(rng, yb, x, scale(yb), u, size)))
    return objs


def _paint(label: np.ndarray, inst: np.ndarray, objs: list[Obj]) -> None:
    """Paint objects far to near (painter's algorithm); each gets a fresh instance id."""
    size = label.shape[0]
    ys, xs = _axes(size)
    for k, (_, cls, shape, (y0, y1, x0, x1)) in enumerate(sorted(objs, key=lambda o: o[0]), start=1):
        r0, r1 = int(max(np.floor(y0), 0)), int(min(np.ceil(y1) + 1, size))
        c0, c1 = int(max(np.floor(x0), 0)), int(min(np.ceil(x1) + 1, size))
        if r1 <= r0 or c1 <= c0:
            continue
        m = shape(ys[r0:r1], xs[:, c0:c1])
        label[r0:r1, c0:c1][m] = cls
        inst[r0:r1, c0:c1][m] = k


def _merge_lone(k: np.ndarray) -> bool:
    """In place on a 2D view: merge 1-pixel runs along axis 0 into a neighbour; return whether anything changed."""
    inner_lone = (k[1:-1] != k[:-2]) & (k[1:-1] != k[2:])
    if not (inner_lone.any() or (k[0] != k[1]).any() or (k[-1] != k[-2]).any()):
        return False
    for edge, inner in ((0, 1), (-1, -2)):  # a differing first/last row is a run of one
        np.copyto(k[edge], k[inner], where=k[edge] != k[inner])
    for parity in (1, 2):  # odd then even positions, so neighbours along the axis never update together
        mid, before, after = k[parity:-1:2], k[parity - 1:-2:2], k[parity + 1::2][: len(k[parity:-1:2])]
        lone = (mid != before) & (mid != after)
        if not lone.any():
            continue
        side = np.empty((2, *mid.shape), k.dtype)  # neighbours across the axis (mirrored at the border)
        side[0, :, 1:], side[0, :, 0] = mid[:, :-1], mid[:, 1]
        side[1, :, :-1], side[1, :, -1] = mid[:, 1:], mid[:, -2]
        fits_after = (after == side[0]) | (after == side[1])
        fits_before = (before == side[0]) | (before == side[1])
        # take the neighbour that also continues a run across the axis, so no new sliver appears there
        np.copyto(mid, np.where(fits_after & ~fits_before, after, before), where=lone)
    return True


def remove_slivers(label: np.ndarray, inst: np.ndarray, max_passes: int = 4) -> None:
    """In place: merge 1-pixel-wide runs (per row and per column) into a neighbour, keeping label/instance pairs."""
    if inst.max() >= 1 << 23:
        raise ValueError("remove_slivers supports at most 2**23 - 1 instances")
    key = (label.astype(np.int32) << 23) | inst  # one int per (class, instance) pair
    for _ in range(max_passes):
        if not (_merge_lone(key) | _merge_lone(key.T)):
            break
    label[...] = key >> 23
    inst[...] = key & ((1 << 23) - 1)


def make_layout(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample a (label, instances) pair: (S, S) uint8 raw ids and (S, S) int32 ids 1..N (0 = none)."""
    u = size / 64
    ys, xs = _axes(size)
    label = np.full((size, size), SKY, np.uint8)
    inst = np.zeros((size, size), np.int32)
    tilt = rng.uniform(-0.06, 0.06) if rng.random() < 0.35 else 0.0
    horizon = (size * rng.uniform(0.25, 0.62) + tilt * (xs[0] - size / 2)).astype(np.float32)
    ground = ys >= horizon
    if rng.random() < 0.55:
        _mountains(rng, label, horizon, u)
    _ground_bands(rng, label, ground, horizon, u)
    water = str(rng.choice(["sea", "lake", "river", "none"], p=[0.22, 0.15, 0.15, 0.48]))
    if water == "river":  # roads bridge rivers ...
        _water(rng, water, label, ground, horizon, u)
    road = _roads(rng, label, ground, horizon, u)
    if water in ("sea", "lake"):  # ... but end at shores
        _water(rng, water, label, ground, horizon, u)
    _flowers(rng, label, horizon, u)
    _paint(label, inst, _objects(rng, label, horizon, u, road))
    remove_slivers(label, inst)
    used = np.bincount(inst.ravel()) > 0
    if not used.all():  # renumber to 1..N (in painting order) after occlusion removed some objects
        used[0] = True
        inst = (np.cumsum(used, dtype=np.int32) - 1)[inst]
    return label, inst
