"""Re-segmentation: the bench's segmenter reads every generated image back into a label map.

Notation: clean -> the user's label, noisy -> the corrupted label both models received, pred -> the segmentation
of a generated image. Each gallery gets the bench's two mIoU rows, computed by the bench's own functions
(`bench.metrics.confusion` -> `bench.segmenter.miou_from_confusion`, one confusion matrix over the gallery's
images, target ids the segmenter does not predict ignored): `miou` against clean and `miou_noisy` against noisy.
It also gets the share of corrupted pixels the image *follows*:

    corrupted pixels = noisy != clean, where clean is a class the segmenter predicts
    followed         = corrupted pixels where the image shows the corruption: pred == noisy where noisy is a
                       class (a wrong class painted), pred != clean where noisy is not (a hole - unlabeled, as
                       the paper's Edge and Random make - painted as something other than the intended class)
    intended         = corrupted pixels where pred == clean (the image painted what the user meant)

summed over the gallery's images. A robust model paints few corrupted pixels as the corruption. The segmenter
is the bench's for the label encoding (`bench.scoring.DEFAULT_SEGMENTERS`), or the one given to
`python -m demo --segmenter`; loaded on first use.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bench import metrics as M
from bench.segmenter import Segmenter, confusion_matrix, ids_to_indices, load_segmenter, miou_batch, miou_from_confusion

from .classes import ClassTable

AUTO = "auto"  # the bench's segmenter for the checkpoint's dataset, if it is on disk
OFF = "none"  # no re-segmentation
FOLLOWED_COLOR = (255, 0, 255)  # magenta: the image follows the corruption
INTENDED_COLOR = (0, 210, 120)  # green: the image follows the user's label despite the corruption
DIM = 0.35  # brightness of the sample under the marks


def choose_segmenter(dataset: str, configured: str | None) -> tuple[str | None, str]:
    """(load_segmenter source or None, why): `configured` (--segmenter; OFF for none) first, else the bench's default
    for `dataset` when it needs no download (the embedded world's), else None with what to pass."""
    from bench.config import DatasetKind
    from bench.scoring import DEFAULT_SEGMENTERS

    if configured == OFF:
        return None, "off (`--segmenter none`)"
    if configured not in (None, "", AUTO):
        return configured, f"`{configured}` (--segmenter)"
    kind = next((k for k in DatasetKind if k.value == dataset), None)
    default = DEFAULT_SEGMENTERS.get(kind) if kind is not None else None
    if default == "embedded":
        return default, "`embedded` (the bench's segmenter for the embedded world)"
    name = dataset or "this model's dataset"
    if default is not None:
        return None, (f"no local segmenter for {name}: the bench's default `{default}` is downloaded from the "
                      f"Hugging Face Hub; start the demo with `--segmenter {default}` (online) or a directory")
    return None, f"no segmenter for {name}: start the demo with `--segmenter DIR` (a bench segmenter directory)"


@functools.lru_cache(maxsize=4)
def _load(source: str, device: str) -> Segmenter:
    return load_segmenter(source, device=device)


@dataclass(frozen=True)
class Scores:
    """One gallery's re-segmentation, summed over its images."""

    miou: float  # the bench's `miou`: segmentation vs the clean label (NaN when no class is present)
    miou_noisy: float  # the bench's `miou_noisy`: vs the corrupted label the model received
    image_miou: tuple[float, ...]  # per image vs the clean label (captions)
    changed: int  # pixels where noisy != clean, over all images (unlabeled ones included)
    corrupted: int  # corrupted pixels (module docstring), over all images
    followed: int  # of those, segmented as the corrupted class
    intended: int  # of those, segmented as the clean class

    @property
    def followed_share(self) -> float | None:
        """followed / corrupted; None without corrupted pixels."""
        return self.followed / self.corrupted if self.corrupted else None

    @property
    def intended_share(self) -> float | None:
        return self.intended / self.corrupted if self.corrupted else None


def corrupted_pixels(clean: np.ndarray, noisy: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """(H, W) bool: the corruption changed a pixel whose intended class the segmenter predicts."""
    return (noisy != clean) & np.isin(clean, np.asarray(classes))


def followed_pixels(pred: np.ndarray, clean: np.ndarray, noisy: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """bool like `pred`: corrupted pixels the image follows (module docstring): the wrong class, or a painted hole."""
    is_class = np.isin(noisy, np.asarray(classes))
    return corrupted_pixels(clean, noisy, classes) & np.where(is_class, pred == noisy, pred != clean)


def score(pred: np.ndarray, clean: np.ndarray, noisy: np.ndarray, classes: Sequence[int]) -> Scores:
    """Scores of segmentations `pred` (N, H, W) of images made from `noisy` (H, W), meant as `clean` (H, W)."""
    n = len(pred)
    clean_n, noisy_n = np.broadcast_to(clean, pred.shape), np.broadcast_to(noisy, pred.shape)  # (N, H, W)
    miou = miou_from_confusion(M.confusion(pred, clean_n, classes))[0]  # bench.scoring.Scorer.score, row `miou`
    miou_noisy = M.miou(pred, noisy_n, classes)  # row `miou_noisy`
    per_image = confusion_matrix(ids_to_indices(pred, classes, M.IGNORE), ids_to_indices(clean_n, classes, M.IGNORE),
                                 len(classes), M.IGNORE, per_image=True)  # (N, K, K)
    mask = np.broadcast_to(corrupted_pixels(clean, noisy, classes), pred.shape)
    return Scores(float(miou), float(miou_noisy), tuple(float(v) for v in miou_batch(per_image)),
                  n * int((noisy != clean).sum()), int(mask.sum()),
                  int(followed_pixels(pred, clean_n, noisy_n, classes).sum()), int((mask & (pred == clean_n)).sum()))


def overlay(image: np.ndarray, pred: np.ndarray, clean: np.ndarray, noisy: np.ndarray,
            classes: Sequence[int]) -> np.ndarray:
    """(H, W, 3) uint8: the dimmed sample, magenta where it follows the corruption, green where it follows the
    intended class despite it."""
    mask = corrupted_pixels(clean, noisy, classes)
    out = (image.astype(np.float32) * DIM).astype(np.uint8)
    out[followed_pixels(pred, clean, noisy, classes)] = FOLLOWED_COLOR
    out[mask & (pred == clean)] = INTENDED_COLOR
    return out


@dataclass(frozen=True)
class Resegmented:
    """One gallery re-segmented: its scores and one picture per image."""

    scores: Scores
    pred: np.ndarray  # (N, H, W) raw ids
    views: np.ndarray  # (N, H, W, 3): overlays when the corruption changed some pixels, else the segmentations
    overlays: bool  # what `views` holds


def percent(share: float | None) -> str:
    if share is None:
        return "-"
    return f"{100 * share:.1f}%" if 0 < share < 0.01 else f"{100 * share:.0f}%"


def fmt_miou(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:.2f}"


def describe_scores(s: Scores) -> str:
    """One line of markdown for a gallery."""
    text = f"mIoU **{fmt_miou(s.miou)}** vs your label · {fmt_miou(s.miou_noisy)} vs the corrupted label"
    if s.corrupted:
        text += (f" · of {s.corrupted} corrupted pixels, **{percent(s.followed_share)}** painted as the corruption "
                 f"(magenta), {percent(s.intended_share)} as intended (green)")
    elif s.changed:
        text += " · the corruption changed only pixels of classes the segmenter does not predict"
    return text


def summary(scores: dict[str, Scores]) -> str:
    """"SDM painted 31% of the corrupted pixels as the corruption; SCDM 4%" (models with corrupted pixels only);
    a hole counts as painted when the image shows something other than the intended class there."""
    parts = [(slot, s) for slot, s in scores.items() if s.corrupted]
    if not parts:
        return ""
    (first, s0), rest = parts[0], parts[1:]
    text = f"{first} painted {percent(s0.followed_share)} of the corrupted pixels as the corruption"
    return text + "".join(f"; {slot} {percent(s.followed_share)}" for slot, s in rest)


class Resegmenter:
    """The segmenter for one label encoding (`choose_segmenter`), loaded once on first use."""

    def __init__(self, source: str | None, why: str, table: ClassTable, device: str = "cpu") -> None:
        self.source, self.why, self.table, self.device = source, why, table, str(device)
        self._lock = threading.Lock()
        self._error: str | None = None if source is not None else why

    @classmethod
    def for_model(cls, dataset: str, table: ClassTable, configured: str | None = AUTO,
                  device: str = "cpu") -> Resegmenter:
        return cls(*choose_segmenter(dataset, configured), table, device)

    @property
    def available(self) -> bool:
        return self._error is None

    @property
    def note(self) -> str:
        """Markdown: which segmenter scores the galleries, or why none does."""
        return f"re-segmented by {self.why}" if self._error is None else f"re-segmentation unavailable: {self._error}"

    def load(self) -> Segmenter:
        """The loaded segmenter; a ValueError saying why when there is none or it cannot score this model."""
        with self._lock:
            if self._error is not None:
                raise ValueError(self._error)
            try:
                seg = _load(str(self.source), self.device)
            except (ValueError, RuntimeError, OSError, ImportError) as e:
                self._error = f"cannot load segmenter `{self.source}`: {e}"
                raise ValueError(self._error) from None
            if not set(seg.classes) & set(self.table.class_ids):
                self._error = (f"segmenter `{self.source}` predicts raw ids {seg.classes[:8]}..., none of them a "
                               f"class of this model: pass the segmenter of the model's dataset with --segmenter")
                raise ValueError(self._error)
            return seg

    def __call__(self, images: np.ndarray, clean: np.ndarray, noisy: np.ndarray) -> Resegmented:
        """Segment `images` (N, H, W, 3) uint8 made from `noisy`, meant as `clean`."""
        seg = self.load()
        pred = seg.predict(np.ascontiguousarray(images))
        s = score(pred, clean, noisy, seg.classes)
        if s.corrupted:
            views = np.stack([overlay(im, p, clean, noisy, seg.classes) for im, p in zip(images, pred)])
        else:
            views = self.table.colorize(pred)
        return Resegmented(s, pred, views, bool(s.corrupted))
