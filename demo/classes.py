"""The classes a user can paint: raw dataset ids, names and colours, read from a model's `LabelSpec`.

Every colour-coded image the demo reads or shows goes through one `ClassTable`: the brush palette, the
legend, palette snapping of uploads and canvas strokes, and the colour coding of labels and y_t.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scdm.config import LabelSpec

UNLABELED_NAME = "unlabeled"
UNLABELED_COLOR = (0, 0, 0)  # black, as in the ADE20K / COCO-Stuff colour-coded annotations
MAX_LUT_ID = 1 << 16  # raw ids index a dense colour table; 16-bit index PNGs bound them anyway


def voc_color(index: int) -> tuple[int, int, int]:
    """The PASCAL VOC bit-interleaved colour map: distinct colours for palettes a checkpoint does not carry."""
    r = g = b = 0
    c = index
    for shift in range(7, -1, -1):
        r |= ((c >> 0) & 1) << shift
        g |= ((c >> 1) & 1) << shift
        b |= ((c >> 2) & 1) << shift
        c >>= 3
    return r, g, b


def hex_color(rgb: tuple[int, int, int]) -> str:
    """(r, g, b) -> '#rrggbb'."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class ClassTable:
    """Paintable entries (raw id, name, colour); `fill_id` is what unpainted or transparent pixels become."""

    raw_ids: tuple[int, ...]  # one per entry, classes first, then the unlabeled entry if the model has one
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    fill_id: int  # the unlabeled id when the dataset has one, else the first class (e.g. "background")
    has_unlabeled: bool  # True when `fill_id` is an extra "unlabeled" entry (the [MASK] / null label)

    def __post_init__(self) -> None:
        if not (len(self.raw_ids) == len(self.names) == len(self.colors)) or not self.raw_ids:
            raise ValueError("ClassTable needs one name and one colour per raw id, and at least one class")
        if len(set(self.raw_ids)) != len(self.raw_ids):
            raise ValueError(f"ClassTable: duplicate raw ids in {self.raw_ids}")
        if min(self.raw_ids) < 0 or max(self.raw_ids) >= MAX_LUT_ID:
            raise ValueError(f"ClassTable: raw ids must be in [0, {MAX_LUT_ID}), "
                             f"got {min(self.raw_ids)}..{max(self.raw_ids)}")
        seen: dict[tuple[int, int, int], str] = {}
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
        raw = list(spec.raw_ids) if spec.raw_ids is not None else list(range(spec.num_classes))
        names = list(spec.class_names) if len(spec.class_names) == len(raw) else [f"class {r}" for r in raw]
        colors = [tuple(int(v) for v in c) for c in spec.palette] if len(spec.palette) == len(raw) else \
            [voc_color(r + 1) for r in raw]
        uid = spec.unlabeled_id
        has_unlabeled = uid is not None and (spec.unlabeled_to_null or uid not in raw)
        if has_unlabeled:
            if uid in raw:  # unlabeled_to_null: the id has a channel slot but is painted as "unlabeled"
                i = raw.index(uid)
                del raw[i], names[i], colors[i]
            raw.append(uid)
            names.append(UNLABELED_NAME)
            colors.append(UNLABELED_COLOR if UNLABELED_COLOR not in colors else (64, 64, 64))
        fill = uid if uid is not None else raw[0]
        return cls(tuple(raw), tuple(names), tuple(colors), fill, has_unlabeled)  # type: ignore[arg-type]

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
        present = np.unique(np.asarray(labels))
        return [int(v) for v in present if int(v) not in self.raw_ids]

    def check(self, labels: np.ndarray) -> np.ndarray:
        """`labels` as int64 (H, W) if every id is an entry, else a ValueError naming the bad ids."""
        labels = np.asarray(labels)
        if labels.ndim != 2 or labels.dtype.kind not in "iu":
            raise ValueError(f"a label map is an (H, W) array of integer ids, got {labels.dtype} {labels.shape}")
        bad = self.invalid_ids(labels)
        if bad:
            raise ValueError(f"label ids {bad[:10]}{' ...' if len(bad) > 10 else ''} are not classes of this model; "
                             f"valid raw ids are {self.describe_ids()}")
        return labels.astype(np.int64)

    def describe_ids(self) -> str:
        """A short 'id name' listing for error messages."""
        parts = [f"{r} {n}" for r, n in zip(self.raw_ids, self.names)]
        return ", ".join(parts[:16]) + (f", ... ({len(parts)} in all)" if len(parts) > 16 else "")

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """(..., H, W) raw ids -> (..., H, W, 3) uint8 colours; ids outside the table are magenta."""
        labels = np.asarray(labels).astype(np.int64)
        lut = np.zeros((max(self.raw_ids) + 2, 3), np.uint8)
        lut[:] = (255, 0, 255)
        lut[list(self.raw_ids)] = self.palette
        other = len(lut) - 1
        return lut[np.where((labels < 0) | (labels > other), other, labels)]

    def legend_html(self) -> str:
        """An HTML legend: a swatch and a name per entry, in brush-palette order."""
        items = "".join(
            f'<span class="scdm-swatch"><i style="background:{hex_color(c)}"></i>{n} <small>({r})</small></span>'
            for r, n, c in zip(self.raw_ids, self.names, self.colors))
        return f'<div class="scdm-legend">{items}</div>'
