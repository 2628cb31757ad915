"""Colour-label artefacts: a label map handed over as a colour-coded image (resized, saved as JPEG) and
decoded back to ids by the nearest palette colour, as the demo decodes uploads.

Encode: every id gets its colour in the ``dataset`` palette (``scdm.datasets``; ``embedded``: the world's
12 ADE20K classes), black codes ``unlabeled`` (as in ADE20K, COCO-Stuff and Cityscapes colour annotations).
Round trip, per map on the CPU with PIL, in memory: bilinear down by ``scale`` and back up (smoothing),
then JPEG at ``quality`` with ``subsampling`` ("auto": full-resolution colour, 4:4:4, at quality >= 90 as
image editors use at high settings, else PIL's default 4:2:0, which blends the colour of every boundary
pixel). The map sits at a random offset (0..15 px per axis, padded by edge replication) to the JPEG block
grid, as a crop of a larger drawing would; that offset is the only randomness.
Decode (``snap_to_palette``): the nearest palette colour in RGB; colours farther than ``far`` from every
palette colour (mixtures of two classes, ringing) become ``unlabeled``.
"""

from __future__ import annotations

import functools
import io
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .kind import Kind, check_choice, check_float, check_int, round_half_up

DATASETS = ("ade20k", "embedded", "coco_stuff", "celebamask_hq", "cityscapes")
BLACK = (0, 0, 0)
FAR = 40.0  # RGB distance beyond which a colour is no class colour (the demo's `demo.labelmap.FAR`)
JPEG_BLOCK = 16  # the JPEG MCU with 4:2:0 chroma subsampling: the random grid offset is drawn in [0, 16)
SUBSAMPLING = ("auto", "4:4:4", "4:2:0")
FULL_CHROMA_QUALITY = 90  # "auto" keeps full-resolution colour (4:4:4) from this quality up
Color = tuple[int, int, int]


@functools.lru_cache(maxsize=None)
def dataset_palette(dataset: str) -> tuple[tuple[int, Color], ...]:
    """(raw id, colour) of every class of a dataset's colour coding, distinct colours (scdm is imported lazily)."""
    dataset = check_choice("dataset", dataset, DATASETS)
    if dataset == "embedded":
        from scdm.world import PALETTE

        return tuple(PALETTE.items())
    from scdm import datasets

    spec = {
        "ade20k": datasets.ade20k_labels, "coco_stuff": datasets.coco_stuff_labels,
        "celebamask_hq": datasets.celebamask_hq_labels, "cityscapes": datasets.cityscapes_labels,
    }[dataset]()
    ids = spec.raw_ids if spec.raw_ids is not None else range(spec.num_classes)
    return tuple((int(i), tuple(int(v) for v in c)) for i, c in zip(ids, spec.palette))


@functools.lru_cache(maxsize=32)
def palette_table(dataset: str, unlabeled: int) -> tuple[Tensor, Tensor]:
    """The colour coding used here: raw ids (E,) int64 and colours (E, 3) uint8; black is ``unlabeled``.

    A class whose dataset colour is black (the dataset's own unlabeled id) is dropped unless it is ``unlabeled``.
    """
    entries = {i: c for i, c in dataset_palette(dataset) if c != BLACK and i != unlabeled}
    entries[unlabeled] = BLACK
    ids = torch.tensor(list(entries), dtype=torch.int64)
    colors = torch.tensor(list(entries.values()), dtype=torch.uint8)
    return ids, colors


def colour_code(labels: Tensor, ids: Tensor, colors: Tensor, dataset: str) -> Tensor:
    """(B, H, W) raw ids -> (B, H, W, 3) uint8 colours; ValueError for ids the palette has no colour for."""
    size = max(int(labels.max()), int(ids.max())) + 1
    lut = torch.full((size,), -1, dtype=torch.int64)
    lut[ids] = torch.arange(len(ids))
    index = lut[labels]
    if bool((index < 0).any()):
        unknown = torch.unique(labels[index < 0]).tolist()
        raise ValueError(f"ids {unknown[:10]} have no colour in the {dataset!r} palette; pass the dataset the "
                         f"labels come from (dataset= one of {list(DATASETS)}) or the id they use for unlabeled")
    return colors[index]


def snap_to_palette(rgb: Tensor, ids: Tensor, colors: Tensor, *, far: float | None, unlabeled: int) -> Tensor:
    """(..., 3) uint8 colours -> (...) raw ids of the nearest palette colour (Euclidean RGB, ties: first entry).

    Colours farther than ``far`` from every palette colour become ``unlabeled`` (``far=None``: always snap).
    Exact integer distances (float32 on the CPU holds them exactly); each distinct colour is looked up once.
    """
    rgb = rgb.cpu()
    c = rgb.reshape(-1, 3).int()
    packed = c[:, 0] << 16 | c[:, 1] << 8 | c[:, 2]
    uniq, inverse = torch.unique(packed, return_inverse=True)
    u = torch.stack([uniq >> 16, (uniq >> 8) & 255, uniq & 255], 1).float()  # (U, 3)
    p = colors.float()  # (E, 3)
    d2 = (u * u).sum(1, keepdim=True) - 2 * u @ p.T + (p * p).sum(1)  # (U, E) squared distances, exact
    best, nearest = d2.min(1)
    out = ids[nearest]
    if far is not None:
        out = out.masked_fill(best > far * far, unlabeled)
    return out[inverse].view(rgb.shape[:-1])


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
    ids, colors = palette_table(dataset, unlabeled)
    rgb = colour_code(labels.cpu(), ids, colors, dataset).numpy()  # (B, H, W, 3)
    out = []
    for i, g in enumerate(gens):
        offset = torch.randint(0, JPEG_BLOCK, (2,), generator=g).tolist()
        back = round_trip(rgb[i], quality=quality, scale=scale, subsampling=subsampling, offset=offset)
        out.append(snap_to_palette(torch.from_numpy(back.copy()), ids, colors, far=far, unlabeled=unlabeled))
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
