"""Appearance: per-class procedural textures under per-image sky, lighting and white balance."""

# Notation: hz -> horizon row estimated from the label, t -> perspective depth (0 at hz, 1 at the bottom),
# sun -> horizontal light direction (-1 from the left, +1 from the right). Colours are floats in [0, 255],
# held channel-first: a colour is (3, 1, 1) and a picture (3, h, w), so brightness fields (h, w) broadcast.

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from .classes import BUILDING, FIELD, FLOWER, GRASS, MOUNTAIN, ROAD, ROCK, SAND, SIDEWALK, SKY, TREE, WATER
from .noise import fractal_noise

_GROUND = np.zeros(256, bool)
_GROUND[[GRASS, FIELD, SAND, ROAD, SIDEWALK, WATER, FLOWER]] = True

_SKIES = {  # mode -> (zenith, horizon, cloud) colours
    "day": ((55, 115, 205), (165, 200, 235), (245, 245, 248)),
    "sunset": ((60, 70, 140), (250, 160, 90), (240, 170, 150)),
    "overcast": ((140, 145, 155), (200, 202, 206), (225, 225, 228)),
}
_TINTS = {"day": (1.0, 1.0, 1.0), "sunset": (1.08, 0.93, 0.8), "overcast": (0.92, 0.94, 0.97)}  # light colour


def _col(rgb: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """A (3, 1, 1) float32 colour."""
    return np.asarray(rgb, np.float32).reshape(3, 1, 1)


def _rgb(rng: np.random.Generator, choices: list[tuple[int, int, int]], jitter: float = 12.0) -> np.ndarray:
    """One of the colours, jittered per channel, as (3, 1, 1)."""
    return _col(np.asarray(choices[int(rng.integers(len(choices)))]) + rng.normal(0.0, jitter, 3))


def _uniform_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Per-pixel noise with zero mean and unit std (uniform: much cheaper than Gaussian)."""
    return (rng.random(shape, dtype=np.float32) - np.float32(0.5)) * np.float32(3.4641)


@dataclass(frozen=True)
class _Ctx:
    """Everything a class painter may read: label, instances, coordinates, noise, sky colours."""

    label: np.ndarray
    inst: np.ndarray
    rng: np.random.Generator
    ys: np.ndarray  # (h, 1) absolute pixel-centre rows
    xs: np.ndarray  # (1, w) absolute pixel-centre columns
    t: np.ndarray  # (h, 1) perspective depth
    low: np.ndarray  # (4, h, w) low-frequency fractal noise
    high: np.ndarray  # (2, h, w) high-frequency fractal noise
    white: np.ndarray  # (2, h, w) per-pixel noise
    hz: float  # horizon row
    u: float  # one pixel at 64 px
    sun: float
    mode: str
    zenith: np.ndarray
    horizon_rgb: np.ndarray
    cloud_rgb: np.ndarray
    height: int  # full image height (the arrays above may be a crop)
    width: int  # full image width

    def crop(self, r0: int, r1: int, c0: int, c1: int) -> "_Ctx":
        """The same context restricted to rows r0:r1 and columns c0:c1 (coordinates stay absolute)."""
        box = (slice(r0, r1), slice(c0, c1))
        return replace(
            self, label=self.label[box], inst=self.inst[box], ys=self.ys[r0:r1], xs=self.xs[:, c0:c1], t=self.t[r0:r1],
            low=self.low[(slice(None), *box)], high=self.high[(slice(None), *box)], white=self.white[(slice(None), *box)],
        )


def _instance_light(c: _Ctx) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: light term in [-1, 1] on its instance's blob, and its row width / the instance's widest row."""
    h, w = c.label.shape
    n = int(c.inst.max()) + 1
    ids = c.inst.ravel()
    area = np.maximum(np.bincount(ids, minlength=n), 1).astype(np.float32)
    cy = np.bincount(ids, np.broadcast_to(c.ys, (h, w)).ravel(), n) / area
    cx = np.bincount(ids, np.broadcast_to(c.xs, (h, w)).ravel(), n) / area
    radius = np.sqrt(area / np.pi)
    rows = c.inst * h + np.arange(h)[:, None]  # (h, w) index into the (instance, row) table
    width = np.bincount(rows.ravel(), minlength=n * h).reshape(n, h)
    rel = width.ravel()[rows] / np.maximum(width.max(1), 1)[c.inst]
    r = radius[c.inst]
    light = np.clip((0.8 * c.sun * (c.xs - cx[c.inst]) - 0.6 * (c.ys - cy[c.inst])) / r, -1.0, 1.0)
    return light.astype(np.float32), rel.astype(np.float32)


def _sky(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Vertical zenith-to-horizon gradient with soft clouds and sometimes a sun glow."""
    rng = c.rng
    t = np.clip(c.ys / max(c.hz, 1.0), 0, 1) ** rng.uniform(0.6, 1.6)
    col = c.zenith + (c.horizon_rgb - c.zenith) * t  # (3, h, 1)
    cover = rng.uniform(0.0, 1.0) if c.mode != "overcast" else rng.uniform(0.5, 1.0)
    cloud = np.clip((c.low[0] - rng.uniform(-0.2, 1.0)) * 1.5, 0, 1) * np.float32(cover)
    col = col + (c.cloud_rgb * (0.85 + 0.1 * c.low[1]) - col) * cloud
    if c.mode != "overcast" and rng.random() < 0.3:
        sy, sx = rng.uniform(0.1, 0.8) * c.hz, rng.uniform(0, c.width)
        glow = np.exp(-((c.ys - sy) ** 2 + (c.xs - sx) ** 2) / (2 * (3 * c.u) ** 2)) * np.float32(0.9)
        col = col + (_col((255, 245, 220)) - col) * glow
    return col


def _mountain(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Rock faces lit by slope direction, distance haze, and snow caps above a snowline."""
    rng = c.rng
    top = np.where(m.any(0), c.ys[m.argmax(0), 0], c.height).astype(np.float32)  # ridge row per column
    k = max(int(round(c.u)), 1)  # slope baseline: about one pixel at 64 px
    ridge = np.pad(np.minimum(top, c.hz + 1), k, mode="edge")
    slope = (ridge[2 * k:] - ridge[:-2 * k]) / (2 * k)
    face = np.clip(-0.4 * c.sun * slope, -1, 1) * np.exp((top - c.ys) / (10 * c.u))  # lit (+) / shadowed (-)
    gain = 1.0 + 0.22 * face + 0.12 * c.low[2] + 0.04 * c.white[0]
    base = _rgb(rng, [(105, 110, 125), (120, 100, 80), (100, 106, 96), (125, 115, 135), (95, 90, 90)])
    base = base + (c.horizon_rgb - base) * np.float32(rng.uniform(0.1, 0.5))  # aerial perspective
    col = base * gain
    if rng.random() < 0.4:
        peak = float(top.min())
        snowline = peak + (c.hz - peak) * rng.uniform(0.2, 0.55) + 2.5 * c.u * c.low[3]
        snow = np.clip((snowline - c.ys) / (1.5 * c.u), 0, 1) * (0.93 + 0.1 * face)
        col = col + (_col((240, 242, 248)) - col) * np.clip(snow, 0, 1)
    return col


def _water(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Deep colour mixed with the sky tint, brighter far away, with horizontal ripples and glints."""
    rng = c.rng
    deep = _rgb(rng, [(40, 90, 150), (30, 105, 125), (45, 90, 90), (55, 75, 125)])
    reflect = np.float32(rng.uniform(0.15, 0.5)) * (1.0 - 0.6 * c.t)  # far water mirrors the horizon sky
    base = deep + (c.horizon_rgb - deep) * reflect
    ripple = fractal_noise(rng, 1, m.shape, (rng.uniform(14, 24) * c.u, rng.uniform(2, 5) * c.u), 2)[0]
    waves = np.sin(c.ys * np.float32(rng.uniform(1.5, 3.0) / c.u) + 2.0 * ripple)
    gain = 1.1 - 0.25 * c.t + 0.08 * waves + 0.07 * ripple
    glint = np.clip(ripple - rng.uniform(0.4, 0.9), 0, 1) * np.float32(rng.uniform(80, 160))
    return base * gain + glint


def _grass(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Green fractal noise with dry patches and fine blades."""
    rng = c.rng
    base = _rgb(rng, [(70, 130, 40), (95, 145, 50), (55, 115, 45), (110, 140, 55)])
    dry = _rgb(rng, [(150, 150, 70), (125, 125, 55)])
    col = base + (dry - base) * (np.clip(c.low[1], 0, 1) * np.float32(rng.uniform(0, 0.6)))
    return col * (1.0 + 0.1 * c.low[2] + 0.08 * c.high[0] + 0.06 * c.white[0])


def _field(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Crop rows in perspective (converging or parallel to the horizon), alternating two tones."""
    rng = c.rng
    tones = [((205, 175, 80), (160, 130, 50)), ((130, 170, 60), (80, 120, 40)), ((140, 105, 70), (95, 68, 45))]
    a, b = (_col(np.asarray(x) + rng.normal(0, 10, 3)) for x in tones[int(rng.choice(3, p=[0.45, 0.3, 0.25]))])
    pitch = rng.uniform(4.0, 8.0) * c.u  # row period at the bottom edge
    depth = np.maximum(c.ys - c.hz + 1.0, 1.0) / max(c.height - c.hz, 1.0)  # (h, 1), 1 at the bottom
    if rng.random() < 0.55:  # rows converging to a vanishing point
        phase = (c.xs - rng.uniform(0, c.width)) / (depth * pitch)
        period = pitch * depth  # local row period in pixels
    else:  # rows parallel to the horizon, denser far away
        phase = np.broadcast_to((c.height - c.hz) / (depth * pitch), m.shape)
        period = pitch * depth * depth
    fade = np.clip((period - 1.8) / 1.2, 0.0, 1.0)  # rows blur out where they get finer than ~2 px
    rows = 0.5 + 0.5 * fade * np.clip(1.6 * np.sin(2 * np.pi * phase + 0.25 * c.low[0]), -1, 1)
    return (a + (b - a) * rows) * (1.0 + 0.06 * c.low[3] + 0.05 * c.white[1])


def _sand(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Pale beige with fine grain."""
    base = _rgb(c.rng, [(215, 195, 145), (195, 170, 120), (225, 210, 170), (200, 180, 140)], 8)
    return base * (1.0 + 0.07 * c.low[3] + 0.06 * c.white[1] + 0.03 * c.high[1])


def _road(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Grey asphalt with grain and a dashed centre line following the road's axis."""
    rng = c.rng
    base = _col(rng.uniform(65, 115) + rng.normal(0, 4, 3))
    col = base * (1.0 + 0.08 * c.white[0] + 0.05 * c.low[3])
    if rng.random() < 0.8:
        mf = m.astype(np.float32)
        n_rows, n_cols = mf.sum(1, keepdims=True), mf.sum(0, keepdims=True)
        run_w = mf.sum() / max((n_rows > 0).sum(), 1)  # mean horizontal extent
        run_h = mf.sum() / max((n_cols > 0).sum(), 1)  # mean vertical extent
        if run_w < 2 * run_h:  # receding road: centre per row, dashes lengthen towards the camera
            centre = (mf * c.xs).sum(1, keepdims=True) / np.maximum(n_rows, 1)
            off, thick = np.abs(c.xs - centre), np.maximum(0.6 * c.u, 0.04 * n_rows)
            along = rng.uniform(8, 20) * c.u / np.maximum(c.ys - c.hz + 1.0, 1.0)
        else:  # crossing road: centre per column
            centre = (mf * c.ys).sum(0, keepdims=True) / np.maximum(n_cols, 1)
            off, thick = np.abs(c.ys - centre), np.maximum(0.6 * c.u, 0.07 * n_cols)
            along = c.xs / (rng.uniform(4, 8) * c.u)
        dash = (off < thick / 2) & ((along + rng.uniform()) % 1.0 < 0.5)
        paint = _col([(235, 235, 230), (230, 200, 60)][int(rng.random() < 0.3)]) * (0.9 + 0.05 * c.white[1])
        col = np.where(dash, paint, col)
    return col


def _sidewalk(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Light paving tiles with per-tile tone jitter and darker joints."""
    rng = c.rng
    base = _rgb(rng, [(180, 178, 170), (200, 188, 165), (175, 130, 110), (160, 165, 170)], 8)
    p = max(2.5, rng.uniform(2.5, 4.5) * c.u)  # tile pitch in pixels
    fy = c.ys / np.float32(0.8 * p)
    fx = c.xs / np.float32(p) + 0.5 * (np.floor(fy) % 2) * (rng.random() < 0.5)  # maybe staggered rows
    tile = (((np.floor(fx) * 73 + np.floor(fy) * 151 + rng.integers(1000)) * 2654435761) % 4096) / 4096.0 - 0.5
    joint = ((fx % 1.0) < 0.8 / p) | ((fy % 1.0) < 1.0 / p)
    return base * (1.0 + 0.08 * tile - 0.14 * joint + 0.04 * c.white[0])


def _building(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Per-house wall colour, pitched-roof colour, window grid and a shaded side wall."""
    rng = c.rng
    out = np.zeros((3, *m.shape), np.float32)
    walls = [(225, 220, 205), (200, 180, 150), (165, 85, 65), (150, 150, 155), (210, 200, 170), (130, 150, 175)]
    roofs = [(150, 60, 45), (70, 70, 80), (110, 70, 50), (60, 80, 100)]
    glasses = [(40, 55, 75), (70, 90, 120)] + ([(230, 200, 110)] if c.mode == "sunset" else [])
    glass = _rgb(rng, glasses)
    for i in np.unique(c.inst[m]):
        im = (c.inst == i) & m
        rows, cols = np.flatnonzero(im.any(1)), np.flatnonzero(im.any(0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        sub = im[r0:r1, c0:c1]
        widths = sub.sum(1)
        wall_top = int(np.argmax(widths >= 0.85 * widths.max()))  # rows above are the pitched roof
        yy = np.arange(r1 - r0)[:, None] - wall_top
        xx = np.arange(c1 - c0)[None, :]
        gain = 1.0 + 0.05 * c.white[0][r0:r1, c0:c1]
        if rng.random() < 0.5:  # side wall in shadow
            gain = gain * np.where(xx >= (c1 - c0) * rng.uniform(0.55, 0.8), rng.uniform(0.7, 0.85), 1.0)
        piece = _rgb(rng, walls, 10) * gain
        pitch = max(3.0, rng.uniform(3.0, 5.0) * c.u)
        size, margin = rng.uniform(0.45, 0.65) * pitch, rng.uniform(0.8, 1.5) * c.u
        windows = ((xx - margin) % pitch < size) & ((yy - margin) % pitch < size) & (yy >= margin)
        windows &= (yy < (r1 - r0 - wall_top) - 0.8 * pitch) & (xx >= margin) & (xx < c1 - c0 - margin)
        piece = np.where(windows, glass + _col(rng.normal(0, 8, 3)), piece)
        piece = np.where(yy < 0, _rgb(rng, roofs, 10) * gain, piece)
        np.copyto(out[:, r0:r1, c0:c1], piece, where=sub)
    return out


def _tree(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Dark green leafy crowns lit from the sun side, brown trunks below the crown."""
    rng = c.rng
    light, rel = _instance_light(c)
    leaf = _rgb(rng, [(45, 95, 35), (30, 75, 40), (60, 100, 35), (35, 80, 55)], 8)
    col = leaf * (0.95 + 0.22 * light + 0.2 * c.high[1] + 0.06 * c.white[1])
    trunk = (rel < 0.36) & (light < 0.5)
    bark = _rgb(rng, [(90, 65, 45), (70, 55, 45)], 6) * (0.9 + 0.1 * c.white[0])
    return np.where(trunk, bark, col)


def _rock(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Grey boulders with spherical shading and grain."""
    light, _ = _instance_light(c)
    stone = _rgb(c.rng, [(115, 115, 110), (112, 100, 88), (98, 100, 108), (135, 130, 122)], 8)
    return stone * (0.85 + 0.3 * light + 0.1 * c.white[0] + 0.06 * c.high[0])


def _flower(c: _Ctx, m: np.ndarray) -> np.ndarray:
    """Bright petals in one or two colours, speckled with green leaves."""
    rng = c.rng
    petals = [(230, 40, 50), (245, 210, 40), (240, 120, 180), (245, 245, 240), (150, 80, 200), (255, 140, 30)]
    a, b = _rgb(rng, petals, 10), _rgb(rng, petals, 10)
    col = np.where(c.high[0] > rng.uniform(-0.5, 1.0), b, a) * (0.9 + 0.12 * c.white[1])
    return np.where(c.white[0] > rng.uniform(0.9, 1.4), _col((60, 110, 40)), col)


_PAINTERS: dict[int, Callable[[_Ctx, np.ndarray], np.ndarray]] = {
    SKY: _sky, MOUNTAIN: _mountain, WATER: _water, GRASS: _grass, FIELD: _field, SAND: _sand,
    ROAD: _road, SIDEWALK: _sidewalk, BUILDING: _building, TREE: _tree, ROCK: _rock, FLOWER: _flower,
}


def _soften(img: np.ndarray, label: np.ndarray, amount: float) -> None:
    """In place: blend pixels on class boundaries towards their 3x3 mean (a little antialiasing)."""
    edge = np.zeros(label.shape, bool)
    dx, dy = label[:, 1:] != label[:, :-1], label[1:] != label[:-1]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:] |= dy
    edge[:-1] |= dy
    rows = img.copy()  # (3, H, W) 3-tap sums along x, then along y; borders keep fewer taps
    rows[:, :, 1:] += img[:, :, :-1]
    rows[:, :, :-1] += img[:, :, 1:]
    box = rows.copy()
    box[:, 1:] += rows[:, :-1]
    box[:, :-1] += rows[:, 1:]
    box /= 9.0
    img += (np.float32(amount) * edge) * (box - img)


def render(
    label: np.ndarray, instances: np.ndarray, rng: np.random.Generator, *, softness: float = 0.35, pixel_noise: float = 3.0
) -> np.ndarray:
    """Render a (H, W, 3) uint8 image of a label map; every rng draws a different plausible appearance."""
    label, instances = np.asarray(label), np.asarray(instances)
    if label.ndim != 2 or instances.shape != label.shape:
        raise ValueError(f"label and instances must be (H, W) arrays of one shape, got {label.shape} and {instances.shape}")
    if label.size and (label.min() < 0 or label.max() > 255 or instances.min() < 0):
        raise ValueError("label must hold raw ids in 0..255 and instances non-negative ids")
    label, instances = label.astype(np.uint8, copy=False), instances.astype(np.int64, copy=False)
    h, w = label.shape
    u = min(h, w) / 64
    ys = (np.arange(h, dtype=np.float32) + 0.5)[:, None]
    xs = (np.arange(w, dtype=np.float32) + 0.5)[None, :]
    ground_rows = _GROUND[label].any(1)
    hz = float(np.argmax(ground_rows)) if ground_rows.any() else float(h)
    t = np.clip((ys - hz) / max(h - hz, 1.0), 0, 1)
    mode = str(rng.choice(["day", "sunset", "overcast"], p=[0.55, 0.2, 0.25]))
    zenith, horizon_rgb, cloud_rgb = (_col(np.asarray(x) + rng.normal(0, 10, 3)) for x in _SKIES[mode])
    extra = max(int(round(np.log2(max(u, 1.0)))), 0)  # larger images get finer octaves, same large shapes
    cells = rng.uniform(3, 7)
    low = fractal_noise(rng, 4, (h, w), (cells, cells * rng.uniform(0.5, 1.0)), 3 + extra)
    high = fractal_noise(rng, 2, (h, w), (rng.uniform(10, 20) * max(u, 1.0) ** 0.5,) * 2, 2 + extra)
    white = _uniform_noise(rng, (2, h, w))
    c = _Ctx(label, instances, rng, ys, xs, t, low, high, white, hz, u, float(rng.choice([-1.0, 1.0])), mode,
             zenith, horizon_rgb, cloud_rgb, h, w)
    present = np.bincount(label.ravel(), minlength=256)
    img = np.zeros((3, h, w), np.float32)
    for cid, paint in _PAINTERS.items():
        if present[cid]:  # paint each class on the bounding box of its pixels
            m = label == cid
            rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
            r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            mc = m[r0:r1, c0:c1]
            np.copyto(img[:, r0:r1, c0:c1], paint(c.crop(r0, r1, c0, c1), mc), where=mc)
    # Atmosphere: distance haze towards the horizon colour, then global light colour, exposure and contrast.
    haze = np.float32(rng.uniform(0.05, 0.35)) * (1 - t) ** 4 * (ys >= hz)  # (H, 1)
    img += (horizon_rgb - img) * (haze * (label != SKY))
    gain = _col(_TINTS[mode]) * np.float32(rng.uniform(0.85, 1.12)) * _col(rng.normal(1.0, 0.04, 3))
    contrast = np.float32(rng.uniform(0.85, 1.15))
    img *= contrast * gain
    img += 128.0 * (1 - contrast) * gain + 0.5  # +0.5: round on the final cast
    if softness > 0:
        _soften(img, label, softness)
    if pixel_noise > 0:
        img += _uniform_noise(rng, (h, w)) * np.float32(rng.uniform(0, pixel_noise))
    return np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()
