"""Uploaded files and canvas pixels -> raw-id label maps at the model's resolution, with a report.

Accepted: index PNGs of raw ids (8- or 16-bit greyscale), palette ('P') PNGs, and colour-coded RGB(A)
images in the model's palette (PNG, JPEG, BMP, GIF, TIFF, WebP). Colours are snapped to the nearest palette
colour (antialiased strokes, JPEG artefacts); transparent pixels become the table's fill id. Limits:
`MAX_FILE_BYTES` per file, `MIN_SIDE`..`MAX_SIDE` pixels per side; other sizes are resized (nearest, or a
per-block majority vote for whole-number factors) to the model's resolution with a notice.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .classes import ClassTable, hex_color

MAX_FILE_BYTES = 8 * 1024 * 1024  # per upload; also passed to Gradio's `max_file_size`
MAX_SIDE = 4096  # pixels per side; larger images are refused before their pixels are decoded
MIN_SIDE = 8  # smaller images carry no usable layout
WORK_SIDE = 1024  # larger images are first subsampled (nearest, whole stride) so decoding stays fast on a CPU
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # Pillow decoders we allow (no EPS/PDF/PSD plugins)
FAR = 40.0  # RGB distance from every palette colour and every two-colour blend beyond which a colour is unknown
MAX_BLEND_CHECKS = 4096  # most frequent far colours tested against blends; rarer ones count as unknown
MAX_UNKNOWN_FRACTION = 0.25  # refuse colour images with more unknown pixels: probably a photo, not a label map
MAX_FAR_FRACTION = 0.5  # ... or with more pixels away from every class colour (region interiors are exact)
ALPHA_CUTOFF = 128  # alpha below this is "not painted"
TOP_COLORS = 5  # unknown colours listed in a report


@dataclass(frozen=True)
class ColorReport:
    """What palette snapping did to a colour-coded image."""

    pixels: int  # pixels looked at
    snapped: int  # pixels whose colour was not exactly a palette colour and were moved to the nearest one
    far: int  # of those, pixels farther than FAR from every palette colour (blends at boundaries, artefacts)
    unknown: int  # of those, pixels farther than FAR from every blend of two palette colours too
    transparent: int  # pixels with alpha < ALPHA_CUTOFF, set to the fill id
    off_palette: tuple[tuple[str, int, str], ...]  # most frequent non-palette colours: (hex, pixels, snapped to)

    def summary(self) -> str:
        """One line for the UI."""
        if not self.snapped and not self.transparent:
            return "all pixels are exact palette colours"
        parts = []
        if self.snapped:
            pct = 100 * self.snapped / max(self.pixels, 1)
            parts.append(f"snapped {self.snapped} px ({pct:.1f}%) to the nearest class colour")
        if self.unknown:
            parts.append(f"{self.unknown} px of unknown colours (not a class colour or a blend of two)")
        if self.transparent:
            parts.append(f"{self.transparent} px transparent -> unlabeled")
        if self.off_palette:
            parts.append("colours not in the palette: " + ", ".join(f"{h} x{n} -> {c}" for h, n, c in self.off_palette))
        return "; ".join(parts)


@dataclass(frozen=True)
class DecodedLabel:
    """A label map the model can take, and how it was obtained."""

    label: np.ndarray  # (S, S) int64 raw ids at the model resolution
    source: str  # how the input was read, e.g. "8-bit index PNG"
    notices: tuple[str, ...] = ()  # resizing, snapping, frames dropped ...
    colors: ColorReport | None = None  # set when colours were decoded

    def report(self) -> str:
        """Markdown lines for the UI."""
        lines = [f"**Read as:** {self.source}, {self.label.shape[1]}x{self.label.shape[0]} px"]
        lines += [f"- {n}" for n in self.notices]
        return "\n".join(lines)


def blend_distance(colors: np.ndarray, palette: np.ndarray, chunk: int = 64) -> np.ndarray:
    """(U, 3) colours -> distance to the nearest blend a*c_i + (1-a)*c_j of two palette colours (antialiasing)."""
    i, j = np.triu_indices(len(palette), 1)
    if not len(i):
        return np.sqrt(((colors - palette[0]) ** 2).sum(-1))
    a, d = palette[i], palette[j] - palette[i]  # (P, 3) segment starts and directions
    dd = np.maximum((d * d).sum(-1), 1e-9)  # (P,)
    out = np.empty(len(colors), np.float32)
    for s in range(0, len(colors), chunk):
        v = colors[s:s + chunk, None, :] - a[None]  # (u, P, 3)
        t = np.clip((v * d[None]).sum(-1) / dd, 0.0, 1.0)  # (u, P) position along each segment
        out[s:s + chunk] = np.sqrt(((v - t[..., None] * d[None]) ** 2).sum(-1)).min(1)
    return out


def snap_to_palette(rgba: np.ndarray, table: ClassTable) -> tuple[np.ndarray, ColorReport]:
    """(H, W, 3|4) uint8 colours -> (H, W) raw ids of the nearest palette colour; alpha < 128 -> fill id."""
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or rgba.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 3 or 4) uint8 colours, got {rgba.dtype} {rgba.shape}")
    h, w = rgba.shape[:2]
    rgb = rgba[..., :3].astype(np.uint32)
    packed = (rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]).reshape(-1)
    transparent = (rgba[..., 3] < ALPHA_CUTOFF).reshape(-1) if rgba.shape[2] == 4 else np.zeros(h * w, bool)
    colors, inverse, counts = np.unique(packed[~transparent], return_inverse=True, return_counts=True)
    unique_rgb = np.stack([colors >> 16, (colors >> 8) & 255, colors & 255], 1).astype(np.float32)  # (U, 3)
    pal = table.palette.astype(np.float32)  # (E, 3)
    dist = np.sqrt(((unique_rgb[:, None, :] - pal[None]) ** 2).sum(-1))  # (U, E)
    nearest = dist.argmin(1)
    d = dist[np.arange(len(colors)), nearest]
    ids = np.asarray(table.raw_ids, dtype=np.int64)
    out = np.full(h * w, table.fill_id, dtype=np.int64)
    out[~transparent] = ids[nearest][inverse.reshape(-1)]
    off = np.flatnonzero(d > 0)
    top = off[np.argsort(-counts[off], kind="stable")][:TOP_COLORS]
    far = np.flatnonzero(d > FAR)
    far = far[np.argsort(-counts[far], kind="stable")]
    checked = far[:MAX_BLEND_CHECKS]
    unknown = int(counts[checked[blend_distance(unique_rgb[checked], pal) > FAR]].sum())
    unknown += int(counts[far[MAX_BLEND_CHECKS:]].sum())
    report = ColorReport(
        pixels=h * w, snapped=int(counts[off].sum()), far=int(counts[far].sum()), unknown=unknown,
        transparent=int(transparent.sum()),
        off_palette=tuple((hex_color(tuple(int(v) for v in unique_rgb[i])), int(counts[i]), table.names[nearest[i]])
                          for i in top))
    return out.reshape(h, w), report


def resize_label(label: np.ndarray, size: int) -> tuple[np.ndarray, str | None]:
    """(H, W) ids -> (size, size): majority per block for whole-number downscale factors, else nearest."""
    h, w = label.shape
    if (h, w) == (size, size):
        return label, None
    if h % size == 0 and w % size == 0:
        fy, fx = h // size, w // size
        uniq, inv = np.unique(label, return_inverse=True)
        blocks = inv.reshape(size, fy, size, fx).transpose(0, 2, 1, 3).reshape(size * size, fy * fx)  # (S*S, fy*fx)
        flat = (np.arange(size * size, dtype=np.int64)[:, None] * len(uniq) + blocks).reshape(-1)
        counts = np.bincount(flat, minlength=size * size * len(uniq)).reshape(size * size, len(uniq))
        out = uniq[counts.argmax(1)].reshape(size, size)
        how = "majority vote per block"
    else:
        rows = np.minimum(((np.arange(size) + 0.5) * h / size).astype(np.int64), h - 1)
        cols = np.minimum(((np.arange(size) + 0.5) * w / size).astype(np.int64), w - 1)
        out = label[rows][:, cols]
        how = "nearest neighbour"
    note = f"resized {w}x{h} -> {size}x{size} px ({how})"
    if h != w:
        note += "; the aspect ratio was not kept"
    return out, note


def _index_label(arr: np.ndarray, table: ClassTable, what: str, lossy: bool) -> np.ndarray:
    """Validate an index map's ids, with a hint for lossy formats."""
    try:
        return table.check(arr.astype(np.int64))
    except ValueError as e:
        hint = " JPEG is lossy and changes ids: save index maps as PNG." if lossy else ""
        raise ValueError(f"{what}: {e}.{hint}") from None


def _decode_colors(rgba: np.ndarray, table: ClassTable, what: str) -> tuple[np.ndarray, ColorReport]:
    """Snap colours; refuse images that are mostly far from the palette."""
    label, rep = snap_to_palette(rgba, table)
    painted = rep.pixels - rep.transparent
    if painted and (rep.unknown / painted > MAX_UNKNOWN_FRACTION or rep.far / painted > MAX_FAR_FRACTION):
        raise ValueError(
            f"{what}: {100 * rep.far / painted:.0f}% of the pixels are far from every class colour "
            f"(e.g. {', '.join(h for h, _, _ in rep.off_palette[:3])}); this does not look like a label map in "
            f"this model's palette. Upload a colour-coded label in the palette shown in the legend, or an index "
            f"PNG of raw ids ({table.describe_ids()}).")
    return label, rep


def _from_image(im: Image.Image, table: ClassTable) -> tuple[np.ndarray, str, list[str], ColorReport | None]:
    """Decode a loaded Pillow image at its own size."""
    fmt = im.format or "image"
    lossy = fmt == "JPEG"
    mode = im.mode
    notes: list[str] = []
    if mode in ("L", "I;16", "I;16L", "I;16B", "I;16N", "I"):
        arr = np.asarray(im)
        bits = {"L": 8, "I": 32}.get(mode, 16)
        if arr.dtype.kind == "i" and arr.size and int(arr.min()) < 0:
            raise ValueError(f"{bits}-bit index image: negative ids {int(arr.min())} are not raw dataset ids")
        source = f"{bits}-bit index {fmt} (pixel values = raw ids)"
        return _index_label(arr, table, f"{bits}-bit index {fmt}", lossy), source, notes, None
    if mode == "LA":
        arr = np.asarray(im)
        ids = np.where(arr[..., 1] < ALPHA_CUTOFF, table.fill_id, arr[..., 0]).astype(np.int64)
        source = f"index {fmt} with alpha (values = raw ids)"
        return _index_label(ids, table, f"index {fmt} with alpha", lossy), source, notes, None
    if mode in ("P", "PA"):
        idx = np.asarray(im.convert("P") if mode == "PA" else im)
        used = np.unique(idx)
        pal = np.asarray(im.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
        used_colors = {tuple(int(v) for v in pal[i]) for i in used if i < len(pal)}
        if not used_colors <= set(table.colors) and not table.invalid_ids(idx):
            return table.check(idx), f"palette {fmt} (indices read as raw ids)", notes, None
        label, rep = _decode_colors(np.asarray(im.convert("RGBA")), table, f"palette {fmt}")
        return label, f"palette {fmt} (decoded by colour)", notes, rep
    if mode in ("1", "F", "I;16S", "I;32", "I;32S") or mode.startswith("I;"):
        raise ValueError(f"{fmt} in mode {mode!r} is not a label map: use an 8/16-bit index PNG of raw ids or "
                         f"a colour-coded RGB PNG")
    rgba = np.asarray(im.convert("RGBA"))
    rgb = rgba[..., :3]
    grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())
    if grey and not (set(np.unique(rgb[..., 0]).tolist()) <= {c[0] for c in table.colors if c[0] == c[1] == c[2]}):
        ids = rgb[..., 0].astype(np.int64)
        if not table.invalid_ids(ids):
            notes.append("a grey RGB image whose values are all class ids: read as an index map")
            return ids, f"greyscale RGB {fmt} (values = raw ids)", notes, None
    label, rep = _decode_colors(rgba, table, f"colour-coded {fmt}")
    if lossy and rep.snapped:
        notes.append("JPEG artefacts were snapped to the palette; PNG keeps labels exact")
    return label, f"colour-coded {mode} {fmt} (decoded by colour)", notes, rep


def decode_bytes(data: bytes, table: ClassTable, size: int) -> DecodedLabel:
    """The bytes of an uploaded image -> a label map at `size` x `size`, or a ValueError saying what to do."""
    if not data:
        raise ValueError("the file is empty: upload a PNG label map")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"the file is {len(data) / 2**20:.1f} MiB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=FORMATS)
            fmt = im.format
            w, h = im.size
            if w > MAX_SIDE or h > MAX_SIDE:
                raise ValueError(f"the image is {w}x{h} px; the limit is {MAX_SIDE} px per side (the model works "
                                 f"at {size} px, so downscale it first)")
            if w < MIN_SIDE or h < MIN_SIDE:
                raise ValueError(f"the image is {w}x{h} px; label maps must be at least {MIN_SIDE}x{MIN_SIDE} px")
            frames = getattr(im, "n_frames", 1)
            im.load()
            stride = -(-max(w, h) // WORK_SIDE)
            if stride > 1:  # nearest subsampling never invents ids or colours
                im = im.resize((max(1, w // stride), max(1, h // stride)), Image.Resampling.NEAREST)
                im.format = fmt
    except UnidentifiedImageError:
        raise ValueError(f"not a readable image: upload a label map as {', '.join(FORMATS[:-1])} or WebP") from None
    except (OSError, SyntaxError, EOFError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"the image is truncated or corrupt ({type(e).__name__}: {e})") from None
    label, source, notes, colors = _from_image(im, table)
    if stride > 1:
        notes.insert(0, f"subsampled {w}x{h} -> {im.size[0]}x{im.size[1]} px (stride {stride}) before decoding")
    if frames > 1:
        notes.insert(0, f"the file has {frames} frames; only the first was used")
    if colors is not None:
        notes.append(colors.summary())
    label, note = resize_label(label, size)
    if note:
        notes.append(note)
    return DecodedLabel(table.check(label), source, tuple(notes), colors)


def decode_file(path: str | os.PathLike, table: ClassTable, size: int) -> DecodedLabel:
    """An uploaded file (a server-side copy made by Gradio) -> label map; checks the size before reading."""
    p = Path(path)
    if not p.is_file():
        raise ValueError("no file received: upload a label map first")
    n = p.stat().st_size
    if n > MAX_FILE_BYTES:
        raise ValueError(f"the file is {n / 2**20:.1f} MiB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB")
    return decode_bytes(p.read_bytes(), table, size)


def index_png(label: np.ndarray) -> bytes:
    """(H, W) raw ids -> an 8-bit (ids < 256) or 16-bit greyscale PNG."""
    label = np.asarray(label)
    if label.size and (label.min() < 0 or label.max() > 65535):
        raise ValueError("index PNGs hold ids in 0..65535")
    im = Image.fromarray(label.astype(np.uint8)) if label.max(initial=0) < 256 else \
        Image.fromarray(label.astype(np.uint16))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
