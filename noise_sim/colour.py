"""Colour-label artefacts: a label map handed over as a colour-coded image (resized, saved as JPEG) and
decoded back to ids by the nearest palette colour, as the demo decodes uploads.

Encode: every id gets its colour in the ``dataset`` palette (``scdm.datasets``; ``embedded``: the world's
12 ADE20K classes), black codes ``unlabeled`` (as in ADE20K, COCO-Stuff and Cityscapes colour annotations).
Round trip, per map on the CPU with PIL, in memory: bilinear down by ``scale`` and back up (smoothing),
then JPEG at ``quality`` with ``subsampling`` ("auto": full-resolution colour, 4:4:4, at quality >= 90 as
image editors use at high settings, else PIL's default 4:2:0, which blends the colour of every boundary
pixel). The map sits at a random offset (0..15 px per axis, padded by edge replication) to the JPEG block
grid, as a crop of a larger drawing would; that offset is the only randomness.
Decode (``scdm.label_io.snap_colors``): exact palette colours, then the nearest palette colour in RGB; colours
farther than ``far`` from every palette colour (mixtures of two classes, ringing) become ``unlabeled``.
"""

from __future__ import annotations

import functools
import io
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from scdm.datasets import DATASETS as KNOWN_DATASETS
from scdm.datasets import dataset_labels
from scdm.label_io import FAR, snap_colors
from scdm.labels import UNLABELED_COLOR, UNLABELED_NAME, ClassTable

from .kind import Kind, check_choice, check_float, check_int, round_half_up

DATASETS = ("ade20k", "embedded", "coco_stuff", "celebamask_hq", "cityscapes")
JPEG_BLOCK = 16  # the JPEG MCU with 4:2:0 chroma subsampling: the random grid offset is drawn in [0, 16)
SUBSAMPLING = ("auto", "4:4:4", "4:2:0")
FULL_CHROMA_QUALITY = 90  # "auto" keeps full-resolution colour (4:4:4) from this quality up


@functools.lru_cache(maxsize=32)
def palette_table(dataset: str, unlabeled: int) -> ClassTable:
    """The dataset's `ClassTable` with black meaning ``unlabeled``: a class whose colour is black (the dataset's own
    unlabeled id) is dropped unless it is ``unlabeled``; ``unlabeled`` is the fill id."""
    base = ClassTable.from_spec(dataset_labels(check_choice("dataset", dataset, DATASETS)))
    entries = [e for e in zip(base.raw_ids, base.names, base.colors) if e[2] != UNLABELED_COLOR and e[0] != unlabeled]
    entries.append((unlabeled, UNLABELED_NAME, UNLABELED_COLOR))
    ids, names, colors = zip(*entries)
    return ClassTable(ids, names, colors, fill_id=unlabeled, has_unlabeled=True)


def palette_dataset(table: ClassTable) -> str:
    """The dataset (`scdm.datasets.DATASETS`) whose classes and colours `table` has: the palette a user of that
    encoding colour-codes with; ValueError for any other encoding."""
    for name in KNOWN_DATASETS:
        known = ClassTable.from_spec(dataset_labels(name))
        if known.raw_ids == table.raw_ids and known.colors == table.colors:
            return name
    raise ValueError("the colour corruption needs the labels' palette to be a known dataset's "
                     f"({', '.join(KNOWN_DATASETS)}); pick another corruption")


def colour_code(labels: Tensor, table: ClassTable, dataset: str) -> np.ndarray:
    """(B, H, W) raw ids -> (B, H, W, 3) uint8 colours; ValueError for ids the palette has no colour for."""
    labels = labels.cpu().numpy()
    unknown = table.invalid_ids(labels)
    if unknown:
        raise ValueError(f"ids {unknown[:10]} have no colour in the {dataset!r} palette; pass the dataset the "
                         f"labels come from (dataset= one of {list(DATASETS)}) or the id they use for unlabeled")
    return table.colorize(labels)


def round_trip(rgb: np.ndarray, *, quality: int | None, scale: float, subsampling: str,
               offset: Sequence[int]) -> np.ndarray:
    """(H, W, 3) uint8 -> what comes back after bilinear down by ``scale`` and up, then JPEG at ``quality``."""
    h, w, _ = rgb.shape
    dy, dx = offset
    im = Image.fromarray(np.pad(rgb, ((dy, 0), (dx, 0), (0, 0)), mode="edge") if dy or dx else rgb)
    if scale > 1:
        small = (max(1, round_half_up(im.width / scale)), max(1, round_half_up(im.height / scale)))
        im = im.resize(small, Image.Resampling.BILINEAR).resize((im.width, im.height), Image.Resampling.BILINEAR)
    if quality is not None:
        buffer = io.BytesIO()
        if subsampling == "auto":
            subsampling = "4:4:4" if quality >= FULL_CHROMA_QUALITY else "4:2:0"
        im.save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
        im = Image.open(buffer)
        im.load()
    return np.asarray(im)[dy:dy + h, dx:dx + w]


def colour(labels: Tensor, *, quality: int | None, scale: float, subsampling: str, dataset: str, far: float,
           gens: Sequence[torch.Generator], instances: Tensor | None, unlabeled: int) -> Tensor:
    """Colour-code with the dataset palette, resize down and up, save as JPEG, decode by nearest colour."""
    if quality is not None:
        quality = check_int("quality", quality, 1)
        if quality > 100:
            raise ValueError(f"quality must be an integer in [1, 100] (JPEG) or None (lossless), got {quality}")
    scale = check_float("scale", scale, 1.0)
    subsampling = check_choice("subsampling", subsampling, SUBSAMPLING)
    dataset = check_choice("dataset", dataset, DATASETS)
    far = check_float("far", far, 0.0)
    table = palette_table(dataset, unlabeled)
    rgb = colour_code(labels, table, dataset)  # (B, H, W, 3)
    out = []
    for i, g in enumerate(gens):
        offset = torch.randint(0, JPEG_BLOCK, (2,), generator=g).tolist()
        back = round_trip(rgb[i], quality=quality, scale=scale, subsampling=subsampling, offset=offset)
        out.append(torch.from_numpy(snap_colors(back, table, far=far, unknown_id=unlabeled)[0]))
    return torch.stack(out).to(labels.device)


COLOUR = Kind(
    name="colour",
    apply=colour,
    defaults={"quality": 75, "scale": 1.0},
    from_severity=lambda s: {"quality": round_half_up(100 - 90 * s), "scale": max(1.0, 6.0 * s - 2.0)},
    options={"subsampling": "auto", "dataset": "ade20k", "far": FAR},
    summary="a colour-coded label image resized and saved as JPEG, decoded back by the nearest palette colour",
    severity_rule="JPEG quality = round(100 - 90 s): 100 -> 10; down/up scale = max(1, 6 s - 2): 1 up to s = 0.5, 4 at 1",
)
