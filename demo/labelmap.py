"""Uploaded files and canvas pixels -> raw-id label maps at the model's resolution, with a report.

Accepted: what `scdm.label_io.decode_image` reads (index PNGs of raw ids, 8- or 16-bit; palette ('P') PNGs;
colour-coded RGB(A) images in the model's palette) as PNG, JPEG, BMP, GIF, TIFF or WebP. Exact colours first,
then the nearest palette colour (antialiased strokes and their blends, JPEG artefacts), with a report; unknown
colours and transparent pixels become the table's fill id. This module adds the upload limits:
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

from scdm.label_io import ColorReport, decode_image

from .classes import ClassTable

MAX_FILE_BYTES = 8 * 1024 * 1024  # per upload; also passed to Gradio's `max_file_size`
MAX_SIDE = 4096  # pixels per side; larger images are refused before their pixels are decoded
MIN_SIDE = 8  # smaller images carry no usable layout
WORK_SIDE = 1024  # larger images are first subsampled (nearest, whole stride) so decoding stays fast on a CPU
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # Pillow decoders we allow (no EPS/PDF/PSD plugins)


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


def open_upload(data: bytes, name: str = "the image", too_big: str = "") -> Image.Image:
    """The bytes of an upload -> a loaded PIL image within the upload limits, or a ValueError naming `name` that says
    what to do (`too_big` is appended to the message for images over `MAX_SIDE`)."""
    if not data:
        raise ValueError(f"{name} is empty: upload a PNG or JPEG file")
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{name} is {len(data) / 2**20:.1f} MiB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=FORMATS)
            w, h = im.size
            if w > MAX_SIDE or h > MAX_SIDE:
                raise ValueError(f"{name} is {w}x{h} px; the limit is {MAX_SIDE} px per side{too_big}")
            if w < MIN_SIDE or h < MIN_SIDE:
                raise ValueError(f"{name} is {w}x{h} px; it must be at least {MIN_SIDE}x{MIN_SIDE} px")
            im.load()
    except UnidentifiedImageError:
        raise ValueError(f"{name} is not a readable image: upload it as {', '.join(FORMATS[:-1])} or WebP") from None
    except (OSError, SyntaxError, EOFError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ValueError(f"{name} is truncated or corrupt ({type(e).__name__}: {e})") from None
    return im


def decode_bytes(data: bytes, table: ClassTable, size: int) -> DecodedLabel:
    """The bytes of an uploaded image -> a label map at `size` x `size`, or a ValueError saying what to do."""
    im = open_upload(data, "the file", f" (the model works at {size} px, so downscale it first)")
    fmt, (w, h) = im.format, im.size
    frames = getattr(im, "n_frames", 1)
    stride = -(-max(w, h) // WORK_SIDE)
    if stride > 1:  # nearest subsampling never invents ids or colours
        im = im.resize((max(1, w // stride), max(1, h // stride)), Image.Resampling.NEAREST)
        im.format = fmt
    decoded = decode_image(im, table, blends=True)
    label, notes = decoded.ids, list(decoded.notes)
    if stride > 1:
        notes.insert(0, f"subsampled {w}x{h} -> {im.size[0]}x{im.size[1]} px (stride {stride}) before decoding")
    if frames > 1:
        notes.insert(0, f"the file has {frames} frames; only the first was used")
    label, note = resize_label(label, size)
    if note:
        notes.append(note)
    return DecodedLabel(table.check(label), decoded.source, tuple(notes), decoded.colors)


def decode_file(path: str | os.PathLike, table: ClassTable, size: int) -> DecodedLabel:
    """An uploaded file (a server-side copy made by Gradio) -> label map; checks the size before reading."""
    p = Path(path)
    if not p.is_file():
        raise ValueError("no file received: upload a label map first")
    n = p.stat().st_size
    if n > MAX_FILE_BYTES:
        raise ValueError(f"the file is {n / 2**20:.1f} MiB; the limit is {MAX_FILE_BYTES / 2**20:.0f} MiB")
    return decode_bytes(p.read_bytes(), table, size)
