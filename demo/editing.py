"""Edit mode: a picture and its label (an embedded-world scene, or the user's own picture with an uploaded label
map or an example's label); the user repaints the label and only the repainted pixels are regenerated.

The user's picture is brought to the model's square resolution like a label map. Decided for bad input: a picture
whose aspect ratio differs from its label's by more than `ASPECT_TOLERANCE` is refused (the two cannot show the same
scene); one of another size with the label's aspect ratio is resized to the model size with a notice. RGB is used
as is; RGBA, LA and palette pictures are put on white, greyscale, bilevel and CMYK ones converted to RGB, each with a
notice; 16-bit and float single-channel images (a label or depth map uploaded as the picture, most likely) are
refused.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from scdm.world import CLASS_IDS, Scene, WorldConfig, make_scene

from .classes import ClassTable
from .labelmap import open_upload

NUM_EXAMPLES = 8  # test-split scenes offered as examples and edit targets
GROW = 1  # px the repainted region is grown by, so the new content blends across the old boundary
ASPECT_TOLERANCE = 0.02  # relative aspect-ratio difference between a picture and its label that is still the same scene
CONVERTED = {"L": "greyscale", "1": "black-and-white", "CMYK": "CMYK", "YCbCr": "YCbCr", "LAB": "Lab", "HSV": "HSV"}


def examples_supported(table: ClassTable, size: int) -> bool:
    """True when the model knows every class of the embedded world and its size can be rendered."""
    return set(CLASS_IDS) <= set(table.raw_ids) and 16 <= size <= 1024


@functools.lru_cache(maxsize=2 * NUM_EXAMPLES)
def example_scene(index: int, size: int) -> Scene:
    """Test scene `index` of the embedded world at `size` px (cached; the world is deterministic)."""
    if not 0 <= index < NUM_EXAMPLES:
        raise ValueError(f"example index must be in 0..{NUM_EXAMPLES - 1}, got {index}")
    return make_scene(int(index), "test", WorldConfig(size=size))


def repaint_mask(original: np.ndarray, edited: np.ndarray, grow: int = GROW) -> np.ndarray:
    """(H, W) uint8: 1 where `edited` differs from `original`, grown by `grow` px (square neighbourhood)."""
    if original.shape != edited.shape:
        raise ValueError(f"edited label {edited.shape} and original {original.shape} differ in size")
    mask = original != edited
    for _ in range(grow):
        m = mask.copy()
        m[1:] |= mask[:-1]
        m[:-1] |= mask[1:]
        m[:, 1:] |= mask[:, :-1]
        m[:, :-1] |= mask[:, 1:]
        mask = m
    return mask.astype(np.uint8)


@dataclass(frozen=True)
class EditBase:
    """What an edit starts from: a known image and its label at the model size."""

    image: np.ndarray  # (S, S, 3) uint8
    label: np.ndarray  # (S, S) int64 raw ids
    source: str  # "example 3", "your picture (photo.png) with example 2's label"
    example: int | None = None  # the embedded-world test scene, when the image is one
    notices: tuple[str, ...] = ()  # conversions and resizing of the user's picture


def example_base(index: int, size: int) -> EditBase:
    """Embedded-world test scene `index`: its image and label."""
    scene = example_scene(int(index), size)
    return EditBase(scene.image, scene.label.astype(np.int64), f"example {int(index)}", int(index))


def _to_rgb(im: Image.Image) -> tuple[Image.Image, str | None]:
    """An RGB image and a notice saying how it was converted (None when it already was RGB)."""
    mode = im.mode
    if mode == "RGB":
        return im, None
    if mode in ("I", "F") or mode.startswith("I;"):
        bits = "float" if mode == "F" else "32-bit" if mode == "I" else "16-bit"
        raise ValueError(f"the picture is a {bits} single-channel image (mode {mode}), not a photo; if it is the "
                         f"label map, upload it as the label; as the picture, upload an 8-bit RGB PNG or JPEG")
    if mode == "P":
        if "transparency" not in im.info:
            return im.convert("RGB"), "a palette picture: converted to RGB"
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        alpha = np.asarray(rgba)[..., 3]
        if alpha.min() == 255:
            return rgba.convert("RGB"), f"the {mode} picture is fully opaque: its alpha channel was dropped"
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        share = float((alpha < 255).mean())
        return (Image.alpha_composite(white, rgba).convert("RGB"),
                f"{100 * share:.0f}% of the {mode} picture is transparent: put on white")
    if mode in CONVERTED:
        return im.convert("RGB"), f"a {CONVERTED[mode]} picture: converted to RGB"
    raise ValueError(f"the picture's colour mode {mode!r} is not supported: upload an RGB PNG or JPEG")


def read_picture(data: bytes, size: int, label_size: tuple[int, int], name: str = "picture") -> tuple[np.ndarray, list[str]]:
    """The bytes of the user's picture -> ((size, size, 3) uint8, notices); its label was `label_size` (w, h) px.

    A ValueError with what to do for a file that is not an image, too big or small, refused colour modes and an
    aspect ratio other than the label's (module docstring).
    """
    im = open_upload(data, name)
    w, h = im.size
    lw, lh = label_size
    if abs((w / h) / (lw / lh) - 1) > ASPECT_TOLERANCE:
        raise ValueError(f"{name} is {w}x{h} px but its label is {lw}x{lh} px: they must show the same scene at the "
                         f"same aspect ratio; crop the picture or the label so that they match")
    im, note = _to_rgb(im)
    notes = [note] if note else []
    if (w, h) != (size, size):
        notes.append(f"picture resized {w}x{h} -> {size}x{size} px" + ("; the aspect ratio was not kept" if w != h
                                                                       else ""))
        im = im.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8).copy(), notes


def picture_base(picture: str | Path, size: int, label: np.ndarray, label_size: tuple[int, int], label_source: str,
                 label_notices: tuple[str, ...] = ()) -> EditBase:
    """The user's picture file with `label` ((size, size) raw ids, originally `label_size` (w, h) px)."""
    p = Path(picture)
    if not p.is_file():
        raise ValueError("no picture received: upload your picture first")
    image, notes = read_picture(p.read_bytes(), size, label_size, f"the picture {p.name}")
    return EditBase(image, label, f"your picture ({p.name}) with {label_source}", None,
                    tuple(notes) + tuple(label_notices))
