"""Which metrics a run computes, the models they need, and scoring one cell's images into metric rows.

Reference features are cached in `scdm.files.cache_dir("bench", "reference")` by (dataset, split, resolution,
extractor, N, content digest), so a second run or a second model never re-extracts them.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from scdm.files import atomic_write_bytes, cache_dir

from . import metrics as M
from .config import BenchConfig, DatasetKind, Metric

SCORING_VERSION = 1  # bump when a metric's definition changes, so cached rows are recomputed
DEFAULT_SEGMENTERS = {  # mIoU segmenter per dataset when --segmenter is not given
    DatasetKind.EMBEDDED: "embedded",
    DatasetKind.ADE20K: "smp-hub/segformer-b4-512x512-ade-160k",  # online only
    DatasetKind.CITYSCAPES: "smp-hub/segformer-b2-1024x1024-city-160k",  # online only
}


@dataclass(frozen=True)
class Plan:
    """The metrics of a run and the weights they use."""

    metrics: tuple[Metric, ...]
    inception: Path | None = None
    alexnet: Path | None = None
    segmenter: str | None = None
    skipped: tuple[str, ...] = ()  # why default metrics were left out (for the summary)


def plan_metrics(config: BenchConfig) -> Plan:
    """Resolve `config.metrics` against the weights on this machine; a requested but impossible metric raises."""
    inception = M.inception_weights(config.inception_weights)
    alexnet = M.alexnet_weights(config.lpips_backbone)
    kind = config.dataset.kind
    encoding = config.dataset.encoding if kind == DatasetKind.LABELS else kind  # a label-only folder's: its maps'
    segmenter = config.segmenter or DEFAULT_SEGMENTERS.get(encoding)  # type: ignore[arg-type]
    diversity = config.diversity_labels > 0
    photos, no_photos = kind.has_photos, "no photos in a label-only folder (--dataset labels) to compare against"
    available = {
        Metric.FID: (photos and inception is not None, no_photos if not photos else "no Inception weights: pass "
                     f"--inception-weights PATH (torch-fidelity's {M.INCEPTION_FILE}) or use fd_effnetl0"),
        Metric.KID: (photos and inception is not None, no_photos if not photos else
                     "no Inception weights: pass --inception-weights PATH or use kid_effnetl0"),
        Metric.FD_EFFNETL0: (photos, no_photos),
        Metric.KID_EFFNETL0: (photos, no_photos),
        Metric.LPIPS_DIVERSITY: (alexnet is not None and diversity, "needs --lpips-backbone PATH (torchvision "
                                 f"{M.ALEXNET_FILE}) and diversity_labels > 0"),
        Metric.FEAT_DIVERSITY: (diversity, "needs diversity_labels > 0"),
        Metric.MIOU: (segmenter is not None, f"no default segmenter for "
                      f"{encoding.value if encoding is not None else 'these label maps'}: pass --segmenter"),
        Metric.MIOU_NOISY: (segmenter is not None, "needs a segmenter: pass --segmenter"),
        Metric.HF_ENERGY: (True, ""),
    }
    if config.metrics is None:
        chosen = tuple(m for m in Metric if available[m][0])
        skipped = tuple(f"{m.value}: {available[m][1]}" for m in Metric if not available[m][0])
    else:
        for m in config.metrics:
            if not available[m][0]:
                raise ValueError(f"metric {m.value!r} cannot run here: {available[m][1]}")
        chosen, skipped = tuple(dict.fromkeys(config.metrics)), ()
    uses_seg = Metric.MIOU in chosen or Metric.MIOU_NOISY in chosen
    return Plan(chosen, inception if {Metric.FID, Metric.KID} & set(chosen) else None,
                alexnet if Metric.LPIPS_DIVERSITY in chosen else None, segmenter if uses_seg else None, skipped)


def digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


@dataclass
class Space:
    """A loaded feature space with its reference features."""

    spec: M.FeatureSpace
    extractor: torch.nn.Module
    reference: np.ndarray  # (N_ref, D)
    stats: dict = field(default_factory=dict)


@dataclass
class Scorer:
    """Everything needed to score images: extractors with reference statistics, segmenter, LPIPS."""

    plan: Plan
    spaces: list[Space]
    segmenter: object | None
    lpips: torch.nn.Module | None
    device: str
    batch_size: int
    context: str  # digest of what the rows depend on (reference set, segmenter, version)

    def score(self, images: np.ndarray, groups: Sequence[np.ndarray], clean: np.ndarray,
              noisy: np.ndarray | None) -> tuple[list[tuple[Metric, float, int]], np.ndarray | None]:
        """Rows (metric, value, n) for images (N, H, W, 3) of labels `clean` (N, H, W) (`noisy`: corrupted), and
        the (K, K) clean-label confusion over `segmenter.classes` behind the mIoU row (None without one)."""
        want = set(self.plan.metrics)
        rows: list[tuple[Metric, float, int]] = []
        cm = None
        for space in self.spaces:
            feats = M.extract(space.extractor, images, self.batch_size, self.device)
            if space.spec.fd in want:
                rows.append((space.spec.fd, M.frechet_distance(M.statistics(feats), space.stats), len(feats)))
            if space.spec.kid in want:
                rows.append((space.spec.kid, M.kernel_distance(feats, space.reference), len(feats)))
            if Metric.FEAT_DIVERSITY in want and space.spec.fd == Metric.FD_EFFNETL0 and groups:
                g = [M.extract(space.extractor, x, self.batch_size, self.device) for x in groups]
                rows.append((Metric.FEAT_DIVERSITY, M.feature_diversity(g), len(g)))
        if self.lpips is not None and groups:
            rows.append((Metric.LPIPS_DIVERSITY, M.lpips_diversity(self.lpips, groups, self.device), len(groups)))
        if self.segmenter is not None:
            from .segmenter import miou_from_confusion

            pred = self.segmenter.predict(images, batch_size=self.batch_size)
            if Metric.MIOU in want:
                cm = M.confusion(pred, clean, self.segmenter.classes)
                rows.append((Metric.MIOU, miou_from_confusion(cm)[0], len(images)))
            if Metric.MIOU_NOISY in want and noisy is not None:
                rows.append((Metric.MIOU_NOISY, M.miou(pred, noisy, self.segmenter.classes), len(images)))
        if Metric.HF_ENERGY in want:
            rows.append((Metric.HF_ENERGY, M.high_frequency_energy(images), len(images)))
        order = list(Metric)
        return sorted(rows, key=lambda r: order.index(r[0])), cm


def reference_features(space: M.FeatureSpace, extractor: torch.nn.Module, images: np.ndarray, key: str,
                       batch_size: int, device: str) -> np.ndarray:
    """Features of the reference images, cached under `key` + extractor + N + content digest."""
    name = f"{key}_{space.extractor}-{space.layer}_n{len(images)}_{digest(images)}.npy"
    path = cache_dir("bench", "reference") / name
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            pass  # unreadable: recompute and overwrite
    feats = M.extract(extractor, images, batch_size, device)
    buf = io.BytesIO()
    np.save(buf, feats)
    atomic_write_bytes(path, buf.getvalue())
    return feats


def build_scorer(plan: Plan, reference: np.ndarray | None, reference_key: str, *, device: str, batch_size: int) -> Scorer:
    """Load every model the plan needs and the reference features (errors surface here, before sampling); without
    `reference` (a label-only folder) the feature spaces serve the diversity metrics only."""
    spaces = []
    wanted = set(plan.metrics)
    candidates = []
    if {Metric.FID, Metric.KID} & wanted:
        candidates.append(M.inception_space(plan.inception))  # type: ignore[arg-type]
    if {Metric.FD_EFFNETL0, Metric.KID_EFFNETL0, Metric.FEAT_DIVERSITY} & wanted:
        candidates.append(M.effnetl0_space())
    for spec in candidates:
        try:
            ext = M.load_extractor(spec, device)
        except (RuntimeError, OSError) as e:
            raise ValueError(f"cannot load the {spec.extractor} feature extractor ({spec.weights or 'packaged weights'}): {e}") from None
        if reference is None:
            spaces.append(Space(spec, ext, np.zeros((0, 0), np.float32)))
            continue
        ref = reference_features(spec, ext, reference, reference_key, batch_size, device)
        spaces.append(Space(spec, ext, ref, M.statistics(ref)))
    segmenter = None
    if plan.segmenter is not None:
        from .segmenter import load_segmenter

        try:
            segmenter = load_segmenter(plan.segmenter, device=device)
        except (ValueError, RuntimeError, OSError) as e:
            raise ValueError(f"cannot load segmenter {plan.segmenter!r} for mIoU: {e}. Pass --segmenter DIR "
                             f"or leave miou out of --metrics") from None
    lpips = M.load_lpips(plan.alexnet, device) if plan.alexnet is not None else None
    context = "|".join([f"v{SCORING_VERSION}", reference_key, "" if reference is None else digest(reference),
                        str(plan.inception or ""), str(plan.alexnet or ""), str(plan.segmenter or "")])
    return Scorer(plan, spaces, segmenter, lpips, device, batch_size, context)
