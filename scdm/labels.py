"""Label maps as a model sees them: raw dataset ids -> label channels (docs/method.md §2, §7) and their colour coding.

The vocabulary every package uses (noise_sim, bench and demo import it from here):
- class ids: the raw ids of an encoding's channels, `spec.raw_ids` or 0..K-1 when it is None (identity);
- the unlabeled id (ADE20K 0, COCO-Stuff 255) is *null*, the all-zero [MASK] vector, when `unlabeled_to_null` is set
  or when it is not a class id; otherwise it is a class channel like any other;
- valid ids: the class ids plus the unlabeled id; any other id is a ValueError naming the ids and their pixels;
- fill id: what unpainted, transparent and unknown-colour pixels become: the unlabeled id, else the first class.
A `ClassTable` gives every valid id a name and a distinct colour (the null unlabeled id black); `colorize` paints
ids the table lacks `UNKNOWN_COLOR`. Reading and writing label files is `scdm.label_io`.
"""
from __future__ import annotations

import functools
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import LabelSpec

NULL = -1  # channel index of the all-zero [MASK] vector
NOT_A_CLASS = -2  # `lookup_table` entry of the raw ids the encoding does not have

Color = tuple[int, int, int]
UNLABELED_NAME = "unlabeled"
UNLABELED_COLOR: Color = (0, 0, 0)  # black, as in the ADE20K / COCO-Stuff / Cityscapes colour-coded annotations
UNKNOWN_COLOR: Color = (255, 255, 255)  # ids a table lacks; > 40 (label_io.FAR) from every dataset palette colour
MAX_ID = 1 << 16  # raw ids index dense tables; 16-bit index PNGs bound them anyway


# ---------------------------------------------------------------------------------------------- encodings

def class_ids(spec: LabelSpec) -> tuple[int, ...]:
    """Raw id of each channel: `spec.raw_ids`, or 0..K-1 when it is None (identity)."""
    raw = tuple(spec.raw_ids) if spec.raw_ids is not None else tuple(range(spec.num_classes))
    if len(raw) != spec.num_classes:
        raise ValueError(f"LabelSpec: {len(raw)} raw_ids for {spec.num_classes} classes")
    return raw


def unlabeled_is_null(spec: LabelSpec) -> bool:
    """True when the unlabeled id feeds the all-zero [MASK] vector rather than a class channel."""
    return spec.unlabeled_id is not None and (spec.unlabeled_to_null or spec.unlabeled_id not in class_ids(spec))


def unlabeled_channel(spec: LabelSpec) -> int | None:
    """The channel of the unlabeled id when it is a class channel (ADE20K 150, COCO-Stuff 182); None when it is null
    or the dataset has none. Its kappa is forced to 0.5 (docs/method.md §4)."""
    if spec.unlabeled_id is None or unlabeled_is_null(spec):
        return None
    return class_ids(spec).index(spec.unlabeled_id)


def valid_ids(spec: LabelSpec) -> frozenset[int]:
    """The raw ids a label map of this encoding may hold: the class ids and the unlabeled id."""
    return frozenset(class_ids(spec)) | ({spec.unlabeled_id} if spec.unlabeled_id is not None else frozenset())


def fill_id(spec: LabelSpec) -> int:
    """The id of unpainted pixels and of what corruptions erase: the unlabeled id, else the first class."""
    return spec.unlabeled_id if spec.unlabeled_id is not None else class_ids(spec)[0]


def describe(spec: LabelSpec) -> str:
    if spec.raw_ids is None:
        return f"identity ids 0..{spec.num_classes - 1}"
    return f"{spec.num_classes} classes, unlabeled id {spec.unlabeled_id}"


def invalid_ids(labels, valid: Collection[int]) -> dict[int, int]:
    """{id: pixels} of the ids in `labels` (array or tensor) that are not in `valid`, in id order."""
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels)
    if labels.size and labels.dtype.kind in "iu" and 0 <= labels.min() and labels.max() < MAX_ID:
        counts = np.bincount(labels.ravel().astype(np.intp, copy=False), minlength=1)  # one pass, no sort
        ids = np.flatnonzero(counts)
        counts = counts[ids]
    else:
        ids, counts = np.unique(labels, return_counts=True)
    return {int(i): int(n) for i, n in zip(ids, counts) if int(i) not in valid}


def ids_error(bad: dict[int, int], valid: str, of: str = "this model") -> ValueError:
    """The one error for ids an encoding lacks: the ids (10 at most), their pixels, and what is valid."""
    shown = list(bad)[:10]
    more = " ..." if len(bad) > 10 else ""
    pixels = ", ".join(f"{i}: {bad[i]} px" for i in shown)
    return ValueError(f"label ids {shown}{more} are not classes of {of} ({pixels}{more}); valid raw ids are {valid}")


def lookup_table(spec: LabelSpec) -> torch.Tensor:
    """raw id -> channel index: NULL for the null vector, NOT_A_CLASS for ids the encoding does not have."""
    raw = class_ids(spec)
    size = max(list(raw) + [spec.unlabeled_id or 0]) + 1
    table = torch.full((size,), NOT_A_CLASS, dtype=torch.long)
    table[torch.tensor(raw, dtype=torch.long)] = torch.arange(spec.num_classes)
    if unlabeled_is_null(spec):
        table[spec.unlabeled_id] = NULL
    return table


def raw_to_index(labels: torch.Tensor, spec: LabelSpec) -> torch.Tensor:
    """Map raw ids (B, H, W) to channel indices, NULL for the all-zero vector; unknown ids raise."""
    table = lookup_table(spec).to(labels.device)
    bad = (labels < 0) | (labels >= len(table))
    if not bad.any():
        idx = table[labels]
        bad = idx == NOT_A_CLASS
    if bad.any():
        known = sorted(valid_ids(spec))
        raise ids_error(invalid_ids(labels, known), f"{known[:20]}{' ...' if len(known) > 20 else ''} "
                                                     f"(dataset encoding: {describe(spec)})")
    return idx


def as_label_tensor(labels, name: str = "labels") -> torch.Tensor:
    """Integer tensor (B, H, W) from a tensor/array (B, H, W) or (H, W); a clear error otherwise."""
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
        labels = torch.from_numpy(labels.astype(np.int64))
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.dtype.is_complex:
        raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W) or (H, W), got {tuple(labels.shape)}")
    return labels.long()


def one_hot(index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) channel indices (NULL allowed) -> (B, K, H, W) float one-hot; NULL pixels are all-zero."""
    oh = F.one_hot(index.clamp(min=0), num_classes).permute(0, 3, 1, 2).float()
    return oh * (index >= 0)[:, None].float()


def instance_edges(instances: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, 1, H, W): 1 where a 4-neighbour has another id (both sides of each boundary)."""
    e = torch.zeros_like(instances, dtype=torch.bool)
    dx = instances[:, :, 1:] != instances[:, :, :-1]
    dy = instances[:, 1:, :] != instances[:, :-1, :]
    e[:, :, 1:] |= dx
    e[:, :, :-1] |= dx
    e[:, 1:, :] |= dy
    e[:, :-1, :] |= dy
    return e[:, None].float()


def encode(labels, spec: LabelSpec, *, edges=None, device=None) -> torch.Tensor:
    """Raw ids -> condition (B, K [+1], H, W); the edge channel comes from `edges` (instances) or the labels."""
    labels = as_label_tensor(labels)
    if device is not None:
        labels = labels.to(device)
    y = one_hot(raw_to_index(labels, spec), spec.num_classes)
    if spec.use_edges:
        inst = labels if edges is None else as_label_tensor(edges, "edges").to(labels.device)
        if inst.shape != labels.shape:
            raise ValueError(f"instance map shape {tuple(inst.shape)} differs from labels {tuple(labels.shape)}")
        y = torch.cat([y, instance_edges(inst)], dim=1)
    return y


# ---------------------------------------------------------------------------------------------- colours

def voc_color(index: int) -> Color:
    """The PASCAL VOC bit-interleaved colour map: distinct colours for encodings that carry no palette."""
    r = g = b = 0
    c = index
    for shift in range(7, -1, -1):
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return r, g, b


def hex_color(rgb: Color) -> str:
    """(r, g, b) -> '#rrggbb'."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class ClassTable:
    """The paintable entries of an encoding (raw id, name, distinct colour); `fill_id` is what unpainted,
    transparent or unknown-colour pixels become."""

    raw_ids: tuple[int, ...]  # one per entry, classes first, then the unlabeled entry if it is null
    names: tuple[str, ...]
    colors: tuple[Color, ...]
    fill_id: int  # the unlabeled id when the dataset has one, else the first class (e.g. "background")
    has_unlabeled: bool  # True when `fill_id` is an extra "unlabeled" entry (the [MASK] / null label)

    def __post_init__(self) -> None:
        if not (len(self.raw_ids) == len(self.names) == len(self.colors)) or not self.raw_ids:
            raise ValueError("ClassTable needs one name and one colour per raw id, and at least one class")
        if len(set(self.raw_ids)) != len(self.raw_ids):
            raise ValueError(f"ClassTable: duplicate raw ids in {self.raw_ids}")
        if min(self.raw_ids) < 0 or max(self.raw_ids) >= MAX_ID:
            raise ValueError(f"ClassTable: raw ids must be in [0, {MAX_ID}), got {min(self.raw_ids)}..{max(self.raw_ids)}")
        seen: dict[Color, str] = {}
        for name, color in zip(self.names, self.colors):
            if color in seen:
                raise ValueError(f"the palette gives {seen[color]!r} and {name!r} the same colour {hex_color(color)}; "
                                 f"colour-coded labels would be ambiguous, so fix the checkpoint's palette")
            seen[color] = name
        if self.fill_id not in self.raw_ids:
            raise ValueError(f"ClassTable: fill id {self.fill_id} is not one of the raw ids")

    @classmethod
    def from_spec(cls, spec: LabelSpec) -> ClassTable:
        """Entries of a model's label encoding; a missing palette or names get VOC colours and 'class <id>'."""
        raw = list(class_ids(spec))
        names = list(spec.class_names) if len(spec.class_names) == len(raw) else [f"class {r}" for r in raw]
        colors = [tuple(int(v) for v in c) for c in spec.palette] if len(spec.palette) == len(raw) else \
            [voc_color(r + 1) for r in raw]
        uid = spec.unlabeled_id
        if unlabeled_is_null(spec):
            if uid in raw:  # unlabeled_to_null: the id has a channel slot but is painted as "unlabeled"
                i = raw.index(uid)
                del raw[i], names[i], colors[i]
            raw.append(uid)
            names.append(UNLABELED_NAME)
            colors.append(UNLABELED_COLOR if UNLABELED_COLOR not in colors else (64, 64, 64))
        return cls(tuple(raw), tuple(names), tuple(colors), fill_id(spec), unlabeled_is_null(spec))  # type: ignore[arg-type]

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Raw ids of the real classes (the unlabeled entry excluded)."""
        return tuple(r for r in self.raw_ids if not (self.has_unlabeled and r == self.fill_id))

    @property
    def palette(self) -> np.ndarray:
        """(E, 3) uint8 colours in entry order."""
        return np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)

    def name_of(self, raw_id: int) -> str:
        return self.names[self.raw_ids.index(raw_id)] if raw_id in self.raw_ids else f"id {raw_id}"

    def invalid_ids(self, labels: np.ndarray) -> list[int]:
        """Sorted raw ids in `labels` that are not entries of this table."""
        return list(invalid_ids(labels, self.raw_ids))

    def check(self, labels: np.ndarray) -> np.ndarray:
        """`labels` as int64 (H, W) if every id is an entry, else a ValueError naming the bad ids and pixels."""
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.dtype.kind not in "iu":
            raise ValueError(f"a label map is an (H, W) array of integer ids, got {labels.dtype} {labels.shape}")
        bad = invalid_ids(labels, self.raw_ids)
        if bad:
            raise ids_error(bad, self.describe_ids())
        return labels.astype(np.int64)

    def describe_ids(self) -> str:
        """A short 'id name' listing for error messages."""
        parts = [f"{r} {n}" for r, n in zip(self.raw_ids, self.names)]
        return ", ".join(parts[:16]) + (f", ... ({len(parts)} in all)" if len(parts) > 16 else "")

    @functools.cached_property
    def _lut(self) -> np.ndarray:
        """(max id + 2, 3) uint8: the colour of every raw id up to the largest, UNKNOWN_COLOR elsewhere and last."""
        lut = np.empty((max(self.raw_ids) + 2, 3), np.uint8)
        lut[:] = UNKNOWN_COLOR
        lut[list(self.raw_ids)] = self.palette
        return lut

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """(..., H, W) raw ids -> (..., H, W, 3) uint8 colours; ids outside the table are UNKNOWN_COLOR."""
        labels, lut = np.asarray(labels), self._lut
        if labels.size and (labels.min() < 0 or labels.max() >= len(lut)):
            labels = np.where((labels < 0) | (labels >= len(lut)), len(lut) - 1, labels)
        return np.take(lut, labels.astype(np.intp, copy=False), axis=0)


def id_table(ids: Collection[int], unlabeled: int | None = None) -> ClassTable:
    """A table for label maps of no known encoding: VOC colours per id (as `from_spec` without a palette), the
    `unlabeled` id black."""
    spec_ids = sorted(set(int(i) for i in ids) - {unlabeled}) or [0 if unlabeled != 0 else 1]
    spec = LabelSpec(num_classes=len(spec_ids), raw_ids=tuple(spec_ids), unlabeled_id=unlabeled, unlabeled_to_null=True)
    return ClassTable.from_spec(spec)
