"""Metrics as pure functions over features, images and label maps; the libraries do the maths.

Fréchet and kernel distances: torch-fidelity (features -> (mu, Sigma) -> FD; polynomial-kernel MMD).
Inception-v3 (`fid`, `kid`) is used only when its weights are on disk (torch-fidelity's cache or a path);
nothing here ever downloads. The offline feature space is EfficientNet-Lite0 (`fd_effnetl0`, `kid_effnetl0`,
registered with torch-fidelity by `bench.features`). This is the bench's one Fréchet-distance path: images ->
`extract` -> `statistics` (mu, Sigma) -> `frechet_distance`, every step torch-fidelity's own function, and reference
statistics cached by `bench.scoring`. Diversity: LPIPS (the `lpips` package, AlexNet) with a local torchvision
AlexNet file, else normalised EfficientNet-Lite0 features. mIoU: `bench.segmenter`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .config import Metric

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's cached file name
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's cached ImageNet AlexNet
IGNORE = 255  # class index of pixels mIoU skips (unlabeled, or ids the segmenter does not predict)


# ---------------------------------------------------------------------------------------------- weights on disk

def _hub_file(name: str) -> Path | None:
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    return path if path.is_file() else None


def inception_weights(path: str | None = None) -> Path | None:
    """The Inception-v3 FID weights: `path` (must exist) or torch-fidelity's cached download, else None."""
    if path is not None:
        if not Path(path).is_file():
            raise ValueError(f"--inception-weights {path} does not exist (torch-fidelity's {INCEPTION_FILE})")
        return Path(path)
    return _hub_file(INCEPTION_FILE)


def alexnet_weights(path: str | None = None) -> Path | None:
    """The torchvision AlexNet weights LPIPS needs: `path` (must exist) or torch hub's cache, else None."""
    if path is not None:
        if not Path(path).is_file():
            raise ValueError(f"--lpips-backbone {path} does not exist (torchvision's {ALEXNET_FILE})")
        return Path(path)
    return _hub_file(ALEXNET_FILE)


# ---------------------------------------------------------------------------------------------- feature spaces

@dataclass(frozen=True)
class FeatureSpace:
    """A torch-fidelity feature extractor and the two distances computed in it."""

    extractor: str  # torch-fidelity registry name
    layer: str  # feature layer used for FD and KID
    fd: Metric
    kid: Metric
    weights: str | None = None  # feature_extractor_weights_path


def inception_space(weights: Path) -> FeatureSpace:
    return FeatureSpace("inception-v3-compat", "2048", Metric.FID, Metric.KID, str(weights))


def effnetl0_space() -> FeatureSpace:
    from .features import FEATURE_EXTRACTOR, register

    register()
    return FeatureSpace(FEATURE_EXTRACTOR, "pool", Metric.FD_EFFNETL0, Metric.KID_EFFNETL0)


def load_extractor(space: FeatureSpace, device: str | torch.device = "cpu") -> torch.nn.Module:
    """The torch-fidelity extractor of `space` on `device` (weights from disk only)."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    cls = FEATURE_EXTRACTORS_REGISTRY[space.extractor]
    net = cls(space.extractor, [space.layer], feature_extractor_weights_path=space.weights, verbose=False)
    return net.requires_grad_(False).eval().to(device)


@torch.no_grad()
def extract(extractor: torch.nn.Module, images: np.ndarray, batch_size: int = 64,
            device: str | torch.device = "cpu") -> np.ndarray:
    """uint8 (N, H, W, 3) -> (N, D) float64 features; per-image, so independent of batch size up to float noise."""
    x = torch.as_tensor(np.ascontiguousarray(images))
    if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must be uint8 (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
    out = [extractor(x[i:i + batch_size].permute(0, 3, 1, 2).to(device))[0].double().cpu()
           for i in range(0, x.shape[0], batch_size)]  # (B, 3, H, W) -> (B, D)
    return torch.cat(out).numpy() if out else np.zeros((0, 0))


# ---------------------------------------------------------------------------------------------- distances

def statistics(features: np.ndarray) -> dict[str, np.ndarray]:
    """(N, D) features -> {"mu", "sigma"} (torch-fidelity's FID statistics)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"Fréchet statistics need at least 2 feature vectors, got shape {features.shape}")
    return fid_features_to_statistics(torch.from_numpy(np.asarray(features, np.float64)))


def frechet_distance(stats_a: dict[str, np.ndarray], stats_b: dict[str, np.ndarray]) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) (torch-fidelity's implementation)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    return float(fid_statistics_to_metric(stats_a, stats_b, verbose=False)[KEY_METRIC_FID])


def kernel_distance(features_a: np.ndarray, features_b: np.ndarray, *, subsets: int = 100,
                    subset_size: int = 1000, seed: int = 0) -> float:
    """KID: unbiased polynomial-kernel MMD^2 averaged over random subsets (torch-fidelity); subsets shrink to N."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, kid_features_to_metric

    size = min(subset_size, len(features_a), len(features_b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {len(features_a)} and {len(features_b)}")
    out = kid_features_to_metric(torch.from_numpy(np.asarray(features_a, np.float64)),
                                 torch.from_numpy(np.asarray(features_b, np.float64)),
                                 kid_subsets=subsets, kid_subset_size=size, rng_seed=seed, verbose=False)
    return float(out[KEY_METRIC_KID_MEAN])


# ---------------------------------------------------------------------------------------------- diversity

def feature_diversity(groups: Sequence[np.ndarray] | Mapping[object, np.ndarray]) -> float:
    """Mean pairwise Euclidean distance between L2-normalised features of samples sharing a label.

    The offline stand-in for LPIPS diversity: for each label, its (S, D) features from S seeds are
    normalised to unit length, the mean distance over the S(S-1)/2 pairs is taken (range 0..2), and the
    per-label means are averaged. Labels with fewer than two samples are skipped.
    """
    per_label = []
    for f in (groups.values() if isinstance(groups, Mapping) else groups):
        f = np.asarray(f, np.float64)
        if f.ndim != 2:
            raise ValueError(f"each label's features must be (samples, dim), got shape {f.shape}")
        s = f.shape[0]
        if s < 2:
            continue
        u = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        d2 = np.maximum(2.0 - 2.0 * (u @ u.T), 0.0)  # |a-b|^2 = 2 - 2 a.b for unit vectors
        iu = np.triu_indices(s, k=1)
        per_label.append(np.sqrt(d2[iu]).mean())
    if not per_label:
        raise ValueError("feat_diversity needs at least one label with two or more samples")
    return float(np.mean(per_label))


def load_lpips(backbone: Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """LPIPS v0.1 (AlexNet): the package's linear weights plus torchvision AlexNet `features.*` from `backbone`."""
    import warnings

    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's `pretrained=` deprecation inside lpips
        model = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)  # no download
    try:
        state = torch.load(backbone, map_location="cpu", weights_only=True)
        for k in range(1, model.net.N_slices + 1):
            for name, module in getattr(model.net, f"slice{k}").named_children():  # children keep AlexNet's indices
                module.load_state_dict({p: state[f"features.{name}.{p}"] for p in module.state_dict()})
    except (RuntimeError, OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--lpips-backbone {backbone} is not torchvision AlexNet weights ({ALEXNET_FILE}): "
                         f"{type(e).__name__}: {e}") from None
    return model.requires_grad_(False).eval().to(device)


@torch.no_grad()
def lpips_diversity(model: torch.nn.Module, groups: Sequence[np.ndarray], device: str | torch.device = "cpu") -> float:
    """Mean pairwise LPIPS among each label's samples (S, H, W, 3) uint8, averaged over labels."""
    per_label = []
    for g in groups:
        if len(g) < 2:
            continue
        x = torch.from_numpy(np.asarray(g)).permute(0, 3, 1, 2).float().div(127.5).sub(1).to(device)  # (S, 3, H, W)
        a, b = np.triu_indices(len(g), k=1)
        d = model(x[torch.from_numpy(a)], x[torch.from_numpy(b)])  # (P, 1, 1, 1)
        per_label.append(float(d.mean()))
    if not per_label:
        raise ValueError("LPIPS diversity needs at least one label with two or more samples")
    return float(np.mean(per_label))


# ---------------------------------------------------------------------------------------------- mIoU

def confusion(pred: np.ndarray, target: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """(K, K) confusion of predicted vs target raw ids over the segmenter's `classes` (rows = target); other
    target ids are ignored."""
    from .segmenter import confusion_matrix, ids_to_indices

    p = ids_to_indices(pred, classes, fill=IGNORE)
    t = ids_to_indices(target, classes, fill=IGNORE)
    return confusion_matrix(p, t, len(classes), ignore_index=IGNORE)


def miou(pred: np.ndarray, target: np.ndarray, classes: Sequence[int]) -> float:
    """mIoU of predicted vs target raw ids over the segmenter's classes; other target ids are ignored."""
    from .segmenter import miou_from_confusion

    return miou_from_confusion(confusion(pred, target, classes))[0]


# ---------------------------------------------------------------------------------------------- grain

def high_frequency_energy(images: np.ndarray, batch: int = 256) -> float:
    """Mean |x - box3(x)| over pixels and channels of uint8 images (N, H, W, 3), in 8-bit units.

    The residual of a 3x3 box blur keeps only detail finer than three pixels: sampling grain (speckle left by
    the last denoising steps) raises it above the real images' value, washed-out or missing texture lowers it.
    Borders are replicated, so a flat image scores exactly 0.
    """
    total, count = 0.0, 0
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch])).permute(0, 3, 1, 2).double()
        blur = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        total += float((x - blur).abs().sum())
        count += x.numel()
    if count == 0:
        raise ValueError("high-frequency energy needs at least one image")
    return total / count
