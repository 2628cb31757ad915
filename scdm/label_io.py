"""Label files: index PNGs of raw ids and colour-coded images, decoded exactly or with a report of every guess.

Reading. `index_array` / `read_index_png` take images whose pixel values are the ids (8-bit L, palette P as its
indices, 16- and 32-bit grey). `decode_image` / `read_label` take any label image for a `ClassTable`: index maps
(ids checked), palette PNGs (by index when the file's palette is the table's, or no class palette at all; by colour
when it holds class colours at other indices), colour-coded RGB(A) and JPEG. Colours go through `snap_colors`:
exact palette colours first, so near-duplicate colours (ADE20K road (140, 140, 140) and skyscraper (140, 140, 141))
never take each other's pixels; then the nearest palette colour within `far` (a guess); the rest are unknown colours
and become the fill id. Its `ColorReport` counts exact, guessed, unknown (each colour with its pixels) and
transparent pixels, and for lossy files the exact pixels still in doubt (near-twin colours, boundaries).
Writing. `index_png` (bytes) and `write_index_png`: 8-bit when the ids fit, else 16-bit.
"""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .files import atomic_write_bytes
from .labels import ClassTable, hex_color, ids_error, invalid_ids

ID_MODES = ("L", "P", "I;16", "I;16L", "I;16B", "I;16N", "I")  # PIL modes whose pixel values are the ids
FAR = 40.0  # RGB distance from every palette colour beyond which a colour is unknown (never guessed)
LOSSY_TOLERANCE = 4.0  # RGB error of JPEG region interiors at quality >= 75 (YCbCr rounding, DC quantisation)
LOSSY_EDGE = 2  # px from a decoded class boundary where JPEG ringing can land exactly on another class's colour
ALPHA_CUTOFF = 128  # alpha below this is "not painted": the fill id
MAX_BLEND_CHECKS = 4096  # most frequent far colours tested against two-colour blends; rarer ones stay unknown
MAX_BLEND_CLASSES = 48  # blends are looked for between the most frequent classes of the image only
MAX_UNKNOWN_FRACTION = 0.25  # refuse colour images with more unknown pixels: a photo, not a label map
MAX_FAR_FRACTION = 0.5  # ... or with more pixels far from every class colour (region interiors are exact)
TOP_COLORS = 5  # off-palette colours listed in a report


# ---------------------------------------------------------------------------------------------- index maps

@dataclass(frozen=True)
class IndexImage:
    """An index map read from disk: raw ids plus what is needed to write it back the same way."""

    ids: np.ndarray  # (H, W) int64 raw ids
    mode: str  # PIL mode of the source file
    palette: tuple[int, ...] | None = None  # the source palette, for mode P


def index_array(im: Image.Image) -> np.ndarray:
    """(H, W) int64 ids of an index image (ID_MODES; a palette image gives its indices); ValueError otherwise."""
    if im.mode not in ID_MODES:
        raise ValueError(f"PIL mode {im.mode} is not an index map of raw ids (expected one of {', '.join(ID_MODES)}); "
                         f"convert colour-coded label maps to class ids first, or decode them with a ClassTable")
    ids = np.asarray(im).astype(np.int64)
    if ids.ndim != 2:
        raise ValueError(f"expected a single-channel image, got shape {ids.shape}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"negative ids ({ids.min()}) are not raw dataset ids")
    return ids


def read_index_png(path: str | Path) -> IndexImage:
    """Read an index map (see `index_array`); the ValueError names the file."""
    with Image.open(path) as im:
        im.load()
        try:
            ids = index_array(im)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        palette = tuple(im.getpalette()) if im.mode == "P" and im.getpalette() else None
        return IndexImage(ids, im.mode, palette)


def _index_image(ids: np.ndarray, like: IndexImage | None = None) -> Image.Image:
    """ids -> PIL image: 8-bit grey when they fit (P with the source's palette when `like` is one), else 16-bit."""
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iub":
        raise ValueError(f"label maps hold integer ids, got dtype {ids.dtype}")
    if ids.ndim != 2:
        raise ValueError(f"a label map is (H, W), got shape {ids.shape}")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) > 65535):
        raise ValueError(f"index PNGs hold ids in 0..65535, got {int(ids.min())}..{int(ids.max())}")
    eight = int(ids.max(initial=0)) <= 255 and (like is None or like.mode in ("L", "P"))
    im = Image.fromarray(ids.astype(np.uint8 if eight else np.uint16))
    if eight and like is not None and like.mode == "P" and like.palette is not None:
        im.putpalette(list(like.palette))  # an L image with a palette becomes P, values kept as indices
    return im


def index_png(ids: np.ndarray, like: IndexImage | None = None) -> bytes:
    """(H, W) raw ids -> PNG bytes: 8-bit grey when the ids fit (and `like`, if given, is 8-bit), else 16-bit."""
    buf = io.BytesIO()
    _index_image(ids, like).save(buf, format="PNG")
    return buf.getvalue()


def write_index_png(path: str | Path, ids: np.ndarray, like: IndexImage | None = None) -> Path:
    """Write `index_png(ids, like)` to `path` atomically (folders are made)."""
    return atomic_write_bytes(path, index_png(ids, like))


# ---------------------------------------------------------------------------------------------- colours

@dataclass(frozen=True)
class ColorReport:
    """What decoding a colour-coded image did, pixel by pixel."""

    pixels: int  # pixels looked at
    exact: int  # pixels of exactly a palette colour
    snapped: int  # guessed: not a palette colour, given the nearest one within `far` (or a blend's nearer class)
    far: int  # pixels farther than `far` from every palette colour (boundary blends, artefacts, foreign colours)
    unknown: int  # pixels of unknown colours (far, and no blend of two classes when blends are checked): fill id
    transparent: int  # alpha < ALPHA_CUTOFF: fill id
    off_palette: tuple[tuple[str, int, str], ...]  # most frequent non-palette colours: (hex, pixels, name became)
    unknown_colors: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8), compare=False, repr=False)
    unknown_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), compare=False, repr=False)
    ambiguous: int = 0  # lossy files: exact pixels still in doubt: near-twin colours, or within LOSSY_EDGE px of a
    # decoded boundary (where ringing can land exactly on another class's colour)
    ambiguous_classes: tuple[str, ...] = ()  # near-twin classes the file decodes to, and their twins

    @property
    def guessed(self) -> int:
        """Pixels whose class is a guess: snapped, plus the ambiguous exact ones of a lossy file."""
        return self.snapped + self.ambiguous

    def top_unknown(self, n: int = TOP_COLORS) -> list[tuple[str, int]]:
        """The n most frequent unknown colours as (hex, pixels)."""
        return [(hex_color(tuple(int(v) for v in c)), int(k)) for c, k in zip(self.unknown_colors[:n],  # type: ignore[arg-type]
                                                                            self.unknown_counts[:n])]

    def summary(self) -> str:
        """One line for a UI or a log."""
        if self.exact + self.transparent == self.pixels and not self.ambiguous:
            return "all pixels are exact palette colours"
        parts = []
        if self.snapped:
            parts.append(f"snapped {self.snapped} px ({100 * self.snapped / max(self.pixels, 1):.1f}%) to the nearest "
                         f"class colour")
        if self.unknown:
            more = len(self.unknown_colors) - TOP_COLORS
            parts.append(f"{self.unknown} px of {len(self.unknown_colors)} unknown colours (" + ", ".join(
                f"{h} x{k}" for h, k in self.top_unknown()) + (f" and {more} more" if more > 0 else "") + ") -> fill id")
        if self.ambiguous:
            twins = f"; near-twin colours: {', '.join(self.ambiguous_classes[:TOP_COLORS])}" \
                if self.ambiguous_classes else ""
            parts.append(f"{self.ambiguous} px of exact colours still in doubt after lossy compression (near "
                         f"boundaries{twins})")
        if self.transparent:
            parts.append(f"{self.transparent} px transparent -> fill id")
        if self.off_palette:
            parts.append("colours not in the palette: " + ", ".join(f"{h} x{n} -> {c}" for h, n, c in self.off_palette))
        return "; ".join(parts)


def _pack(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 -> (...) int32 0xRRGGBB."""
    rgb = rgb.astype(np.int32)
    return rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]


def _unpack(packed: np.ndarray) -> np.ndarray:
    """(...) 0xRRGGBB -> (..., 3) of the same integer type."""
    return np.stack([packed >> 16, (packed >> 8) & 255, packed & 255], -1)


CELL = 8  # nearest-colour search: RGB cells of CELL^3 levels, each with the palette entries that can be nearest


@functools.lru_cache(maxsize=16)
def _candidates(palette_bytes: bytes) -> np.ndarray:
    """(cells, K) palette entries that can be nearest to some colour of each cell, ascending, padded with E (none).

    An entry can be nearest only if its distance to the cell's box is at most the least, over entries, of the
    largest distance to the box; so every entry at the minimum distance (ties too) is a candidate.
    """
    p = np.frombuffer(palette_bytes, np.uint8).reshape(-1, 3).astype(np.int64)
    lo = np.arange(0, 256, CELL)[:, None, None]
    hi = lo + CELL - 1
    near = np.maximum(np.maximum(lo - p, p - hi), 0) ** 2  # (n, E, 3): per channel, to the cell's interval
    wide = np.maximum(np.abs(p - lo), np.abs(p - hi)) ** 2  # (n, E, 3): to its farthest end
    gb_near = near[:, None, :, 1] + near[None, :, :, 2]  # (n, n, E) green and blue parts
    gb_wide = wide[:, None, :, 1] + wide[None, :, :, 2]
    ok = np.concatenate([  # one red slice at a time: (n, n, E) each
        (near[r, :, 0] + gb_near <= (wide[r, :, 0] + gb_wide).min(-1, keepdims=True)).reshape(-1, len(p))
        for r in range(len(near))])  # (n^3, E)
    out = np.full((len(ok), int(ok.sum(1).max())), len(p), np.int32)
    rows, cols = np.nonzero(ok)  # row-major: entries ascending within each cell
    out[rows, np.arange(len(rows)) - np.searchsorted(rows, rows)] = cols
    return out


def nearest_colors(colors: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(U, 3) and (E, 3) integer colours -> nearest palette entry (ties: the first) and its squared distance.

    Exact integer distances to the few candidates of each colour's RGB cell (`_candidates`), no matrix product.
    """
    colors = np.asarray(colors).astype(np.int32)
    palette = np.ascontiguousarray(palette, np.uint8)
    n = 256 // CELL
    cell = ((colors[:, 0] // CELL) * n + colors[:, 1] // CELL) * n + colors[:, 2] // CELL
    cand = _candidates(palette.tobytes())[cell]  # (U, K); E: no entry
    d2 = np.zeros(cand.shape, np.int32)
    for ch in range(3):
        diff = np.append(palette[:, ch].astype(np.int32), 1 << 12)[cand] - colors[:, ch, None]  # (U, K)
        d2 += diff * diff
    k = d2.argmin(1)
    rows = np.arange(len(colors))
    return cand[rows, k].astype(np.int64), d2[rows, k].astype(np.int64)


def nearest_blends(colors: np.ndarray, palette: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(U, 3) colours -> (U,) entry of the nearer end of the nearest blend a*c_i + (1-a)*c_j of two palette
    colours (antialiased boundaries), and the distance to that blend."""
    colors, palette = colors.astype(np.float32), palette.astype(np.float32)
    i, j = np.triu_indices(len(palette), 1)
    if not len(i):
        return np.zeros(len(colors), np.int64), np.sqrt(((colors - palette[0]) ** 2).sum(-1))
    a, d = palette[i], palette[j] - palette[i]  # (P, 3) segment starts and directions
    dd = np.maximum((d * d).sum(1), 1e-9)
    end, dist = np.empty(len(colors), np.int64), np.empty(len(colors), np.float32)
    for s in range(0, len(colors), chunk):
        u = colors[s:s + chunk]
        diff = [u[:, c, None] - a[:, c] for c in range(3)]  # (u, P) per channel: u - a
        uad = diff[0] * d[:, 0] + diff[1] * d[:, 1] + diff[2] * d[:, 2]  # (u - a).d
        t = np.clip(uad / dd, 0.0, 1.0)
        d2 = sum((diff[c] - t * d[:, c]) ** 2 for c in range(3))  # |u - a - t d|^2
        k = d2.argmin(1)
        rows = np.arange(len(u))
        end[s:s + chunk] = np.where(t[rows, k] < 0.5, i[k], j[k])
        dist[s:s + chunk] = np.sqrt(d2[rows, k])
    return end, dist


def near_boundary(ids: np.ndarray, radius: int) -> np.ndarray:
    """(H, W) bool: pixels with another id within `radius` px (a (2r+1)^2 square), by separable min/max filters."""
    lo, hi = ids.copy(), ids.copy()
    for axis in (0, 1):
        a, b = lo.copy(), hi.copy()
        n = ids.shape[axis]
        for s in range(1, min(radius, n - 1) + 1):
            for src, dst in ((slice(s, None), slice(None, -s)), (slice(None, -s), slice(s, None))):
                ix_src = (src, slice(None)) if axis == 0 else (slice(None), src)
                ix_dst = (dst, slice(None)) if axis == 0 else (slice(None), dst)
                np.minimum(a[ix_dst], lo[ix_src], out=a[ix_dst])
                np.maximum(b[ix_dst], hi[ix_src], out=b[ix_dst])
        lo, hi = a, b
    return lo != hi


def twin_colors(palette: np.ndarray, tolerance: float = LOSSY_TOLERANCE) -> np.ndarray:
    """(E, E) bool: pairs of palette colours within 2 * tolerance of each other (lossy noise can swap them)."""
    p = palette.astype(np.int64)
    d2 = ((p[:, None] - p[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, 1 << 30)
    return d2 <= (2 * tolerance) ** 2


def snap_colors(rgba: np.ndarray, table: ClassTable, *, far: float | None = FAR, blends: bool = False,
                lossy: bool = False, unknown_id: int | None = None) -> tuple[np.ndarray, ColorReport]:
    """(H, W, 3|4) uint8 colours -> (H, W) raw ids and a report.

    Exact palette colours first, then the nearest palette colour within `far` (`None`: always). With `blends`, far
    colours near a blend of two classes the image has (antialiased strokes; the MAX_BLEND_CLASSES most frequent)
    go to the nearer of the two. The rest are unknown colours: `unknown_id` (default: the table's fill id), as are
    pixels with alpha < ALPHA_CUTOFF. `lossy` (JPEG): exact pixels of a colour within 2 * LOSSY_TOLERANCE of
    another class's colour, or within LOSSY_EDGE px of a decoded class boundary, are counted as ambiguous.
    """
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or rgba.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3 or 4) uint8 colours, got {rgba.dtype} {rgba.shape}")
    h, w = rgba.shape[:2]
    pal = table.palette
    e = len(pal)  # entry codes: 0..e-1 palette entries, e unknown colour, e + 1 transparent
    packed = _pack(rgba[..., :3]).reshape(-1)
    keys = _pack(pal)
    order = np.argsort(keys)
    pos = np.minimum(np.searchsorted(keys[order], packed), e - 1)
    is_exact = keys[order][pos] == packed
    entry = np.where(is_exact, order[pos], e)
    transparent = 0
    if rgba.shape[2] == 4:
        clear = (rgba[..., 3] < ALPHA_CUTOFF).reshape(-1)
        transparent = int(clear.sum())
        entry[clear] = e + 1
        is_exact &= ~clear
    rest = np.flatnonzero(entry == e)
    exact = int(is_exact.sum()) if transparent else h * w - len(rest)
    snapped = far_px = 0
    lost = np.zeros(0, np.int64)
    colors = counts = np.zeros(0, np.int64)
    off_palette: tuple[tuple[str, int, str], ...] = ()
    if len(rest):
        colors, inverse, counts = np.unique(packed[rest], return_inverse=True, return_counts=True)
        rgb = _unpack(colors)
        got, best = nearest_colors(rgb, pal)
        is_far = best > far * far if far is not None else np.zeros(len(colors), bool)
        got[is_far] = e
        if blends and is_far.any():
            present = np.bincount(entry[is_exact], minlength=e)
            present += np.bincount(got[~is_far], weights=counts[~is_far], minlength=e).astype(np.int64)
            classes = np.argsort(-present, kind="stable")[:MAX_BLEND_CLASSES]
            classes = classes[present[classes] > 0]
            idx = np.flatnonzero(is_far)
            idx = idx[np.argsort(-counts[idx], kind="stable")][:MAX_BLEND_CHECKS]
            if len(classes) > 1:
                end, dist = nearest_blends(rgb[idx], pal[classes])
                on = dist <= (FAR if far is None else far)
                got[idx[on]] = classes[end[on]]
        entry[rest] = got[inverse.reshape(-1)]
        known = got < e
        snapped, far_px = int(counts[known].sum()), int(counts[is_far].sum())
        lost = np.flatnonzero(~known)
        lost = lost[np.argsort(-counts[lost], kind="stable")]
        top = np.argpartition(-counts, TOP_COLORS)[:TOP_COLORS] if len(counts) > TOP_COLORS else np.arange(len(counts))
        top = top[np.argsort(-counts[top], kind="stable")]
        fill = table.fill_id if unknown_id is None else unknown_id
        off_palette = tuple((hex_color(tuple(int(v) for v in rgb[i])), int(counts[i]),  # type: ignore[arg-type]
                             table.names[got[i]] if got[i] < e else table.name_of(fill)) for i in top)
    codes = np.array(table.raw_ids + (table.fill_id if unknown_id is None else unknown_id, table.fill_id), np.int64)
    out = codes[entry].reshape(h, w)
    ambiguous, ambiguous_classes = 0, ()
    if lossy:
        twins = np.pad(twin_colors(pal), ((0, 2), (0, 2)))  # the unknown and transparent codes have no twins
        doubt = twins.any(1)[entry].reshape(h, w) | near_boundary(out, LOSSY_EDGE)
        ambiguous = int((doubt & is_exact.reshape(h, w)).sum())
        hit = np.bincount(entry, minlength=e + 2) > 0
        group = ((hit & twins.any(1)) | twins[hit].any(0))[:e]  # decoded near-twin classes and their twins
        ambiguous_classes = tuple(table.names[i] for i in np.flatnonzero(group))
    return out, ColorReport(
        pixels=h * w, exact=exact, snapped=snapped, far=far_px, unknown=int(counts[lost].sum()),
        transparent=transparent, off_palette=off_palette,
        unknown_colors=_unpack(colors[lost]).astype(np.uint8), unknown_counts=counts[lost].astype(np.int64),
        ambiguous=ambiguous, ambiguous_classes=ambiguous_classes)


# ---------------------------------------------------------------------------------------------- any label image

@dataclass(frozen=True)
class DecodedImage:
    """A label image decoded for a table: ids at the image's own size, and how they were obtained."""

    ids: np.ndarray  # (H, W) int64 raw ids, all entries of the table
    source: str  # how the input was read, e.g. "8-bit index PNG (pixel values = raw ids)"
    notes: tuple[str, ...] = ()  # palette disagreements, snapping ...
    colors: ColorReport | None = None  # set when colours were decoded


def _check_index(ids: np.ndarray, table: ClassTable, what: str, lossy: bool) -> np.ndarray:
    """Every id an entry of the table, else a ValueError naming the ids and their pixels (lossy: a PNG hint)."""
    bad = invalid_ids(ids, table.raw_ids)
    if bad:
        hint = " JPEG is lossy and changes ids: save index maps as PNG." if lossy else ""
        raise ValueError(f"{what}: {ids_error(bad, table.describe_ids())}.{hint}")
    return ids.astype(np.int64)


def _decode_colors(rgba: np.ndarray, table: ClassTable, what: str, lossy: bool, blends: bool) -> tuple[np.ndarray, ColorReport]:
    """Snap colours; refuse images that are mostly far from the palette (photos)."""
    ids, rep = snap_colors(rgba, table, blends=blends, lossy=lossy)
    painted = rep.pixels - rep.transparent
    if painted and (rep.unknown / painted > MAX_UNKNOWN_FRACTION or rep.far / painted > MAX_FAR_FRACTION):
        raise ValueError(
            f"{what}: {100 * rep.far / painted:.0f}% of the pixels are far from every class colour "
            f"(e.g. {', '.join(h for h, _, _ in rep.off_palette[:3])}); this does not look like a label map in "
            f"this model's palette. Use a colour-coded label in the model's palette (the legend), or an index "
            f"PNG of raw ids ({table.describe_ids()}).")
    return ids, rep


def decode_image(im: Image.Image, table: ClassTable, *, blends: bool = True) -> DecodedImage:
    """A loaded PIL image -> the table's raw ids at its own size; ValueError (naming ids, colours) otherwise.

    `blends`: far colours on a blend of two class colours (antialiased strokes, resized maps) go to the nearer of
    the two classes instead of being unknown (`snap_colors`).
    """
    fmt = im.format or "image"
    lossy = fmt == "JPEG"
    mode = im.mode
    if mode in ("L", "I;16", "I;16L", "I;16B", "I;16N", "I"):
        bits = {"L": 8, "I": 32}.get(mode, 16)
        what = f"{bits}-bit index {fmt}"
        try:
            ids = index_array(im)
        except ValueError as e:
            raise ValueError(f"{what}: {e}") from None
        return DecodedImage(_check_index(ids, table, what, lossy), f"{what} (pixel values = raw ids)")
    if mode == "LA":
        arr = np.asarray(im)
        ids = np.where(arr[..., 1] < ALPHA_CUTOFF, table.fill_id, arr[..., 0]).astype(np.int64)
        return DecodedImage(_check_index(ids, table, f"index {fmt} with alpha", lossy),
                            f"index {fmt} with alpha (values = raw ids)")
    if mode in ("P", "PA"):
        idx = np.asarray(im.convert("P") if mode == "PA" else im).astype(np.int64)
        used = np.unique(idx)
        pal = np.asarray(im.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
        used_colors = [tuple(int(v) for v in pal[i]) if i < len(pal) else None for i in used]
        valid = not invalid_ids(idx, table.raw_ids)
        own = {r: c for r, c in zip(table.raw_ids, table.colors)}
        if valid and all(own.get(int(i)) == c for i, c in zip(used, used_colors)):
            return DecodedImage(idx, f"palette {fmt} in this model's palette (indices = raw ids)")
        if not set(used_colors) <= set(table.colors) and valid:
            return DecodedImage(idx, f"palette {fmt} (indices read as raw ids)",
                                ("its palette is not this model's colour coding: the indices were read as raw ids",))
        ids, rep = _decode_colors(np.asarray(im.convert("RGBA")), table, f"palette {fmt}", lossy, blends)
        note = ("its palette disagrees with this model's (class colours at other indices)" if valid or
                set(used_colors) <= set(table.colors) else "its indices are not this model's raw ids") + \
            ": decoded by colour"
        return DecodedImage(ids, f"palette {fmt} (decoded by colour)", (note, rep.summary()), rep)
    if mode in ("1", "F") or mode.startswith("I;"):
        raise ValueError(f"{fmt} in mode {mode!r} is not a label map: use an 8/16-bit index PNG of raw ids or "
                         f"a colour-coded RGB PNG")
    rgba = np.asarray(im.convert("RGBA"))
    rgb = rgba[..., :3]
    notes = []
    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    if grey and not (set(np.unique(rgb[..., 0]).tolist()) <= {c[0] for c in table.colors if c[0] == c[1] == c[2]}):
        ids = rgb[..., 0].astype(np.int64)
        if not invalid_ids(ids, table.raw_ids):
            return DecodedImage(ids, f"greyscale RGB {fmt} (values = raw ids)",
                                ("a grey RGB image whose values are all class ids: read as an index map",))
    ids, rep = _decode_colors(rgba, table, f"colour-coded {fmt}", lossy, blends)
    notes.append(rep.summary())
    if lossy and rep.guessed:
        notes.append("JPEG artefacts were snapped to the palette; PNG keeps labels exact")
    return DecodedImage(ids, f"colour-coded {mode} {fmt} (decoded by colour)", tuple(notes), rep)


def read_label(path: str | Path, table: ClassTable, *, blends: bool = True) -> DecodedImage:
    """`decode_image` of a file (first frame); unreadable files and bad contents raise a ValueError naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            return decode_image(im, table, blends=blends)
    except (UnidentifiedImageError, OSError, SyntaxError, EOFError) as e:
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
