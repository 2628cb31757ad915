"""Label Diffusion: the discrete absorbing-state forward process q(y_t | y_0) of SCDM (docs/method.md §4).

Notation: gamma_t(c) -> probability that a pixel of class c keeps its one-hot at original step t;
tau = t / T; kappa_c -> per-class schedule parameter. A dropped pixel becomes the all-zero [MASK] vector,
which is also the classifier-free-guidance null label. The edge channel is never diffused.

Class-wise schedule: 1 - gamma_t(c) = min(tau, (kappa_c^tau - 1) / (kappa_c - 1)); kappa_c <= 1 is linear.
Uniform schedule (the paper's ablation), as the reference builds it: the cumulative product of
1 - 1 / (N - i) over the N steps of the diffusion in use, i.e. gamma_i = 1 - (i + 1) / N at step i. It is indexed
by the *respaced* step: with 1000 steps gamma_t = 1 - (t + 1) / T, with `ddim25` the step at t = 960 (i = 24)
drops every pixel and the one at t = 0 keeps 24/25.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .config import LabelDiffusionConfig, LabelSchedule


def drop_probability(tau: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """1 - gamma_t(c) for tau (B,) and kappa (K,) -> (B, K), float64 (docs/method.md §4 class-wise schedule)."""
    tau = tau.double()[:, None]
    kappa = kappa.double()[None]
    linear = tau.expand(-1, kappa.shape[1])
    curved = torch.expm1(tau * torch.log(kappa.clamp(min=1e-12))) / (kappa - 1)
    return torch.where(kappa > 1 + 1e-9, torch.minimum(linear, curved), linear)


class LabelDiffusion:
    """q(y_t | y_0) for one model: the schedule as a (T+1, K) table of keep probabilities gamma_t(c)."""

    def __init__(self, config: LabelDiffusionConfig, num_classes: int, num_timesteps: int = 1000,
                 timesteps: torch.Tensor | None = None):
        """`timesteps` (N,): the original steps a respaced sampler visits; only the uniform schedule uses them."""
        self.config = config
        self.num_classes = num_classes
        self.num_timesteps = num_timesteps
        tau = torch.arange(num_timesteps + 1, dtype=torch.float64) / num_timesteps
        if config.schedule == LabelSchedule.CLASSWISE:
            if len(config.kappa) != num_classes:
                raise ValueError(f"class-wise Label Diffusion needs one kappa per class: got {len(config.kappa)} "
                                 f"values for {num_classes} classes (estimate_kappa or load_kappa make them)")
            gamma = 1 - drop_probability(tau, torch.tensor(config.kappa, dtype=torch.float64))
        elif config.schedule == LabelSchedule.UNIFORM:
            visited = torch.arange(num_timesteps) if timesteps is None else torch.as_tensor(timesteps).long().cpu()
            n = len(visited)
            gamma = torch.zeros(num_timesteps + 1, dtype=torch.float64)
            gamma[visited] = 1 - (torch.arange(n, dtype=torch.float64) + 1) / n  # gamma_i = 1 - (i + 1) / N
            gamma = gamma[:, None].expand(-1, num_classes)
        else:
            gamma = torch.ones(num_timesteps + 1, num_classes, dtype=torch.float64)
        self.gamma = gamma.float().contiguous()  # (T+1, K)

    def respaced(self, timesteps: torch.Tensor) -> "LabelDiffusion":
        """The same process for a sampler visiting only `timesteps` (changes only the uniform schedule)."""
        if self.config.schedule != LabelSchedule.UNIFORM:
            return self
        return LabelDiffusion(self.config, self.num_classes, self.num_timesteps, timesteps)

    @property
    def enabled(self) -> bool:
        return self.config.schedule != LabelSchedule.NONE

    def q_sample(self, y0: torch.Tensor, t: torch.Tensor, generator: torch.Generator | None = None,
                 num_classes: int | None = None, *, uniform: torch.Tensor | None = None) -> torch.Tensor:
        """Draw y_t ~ q(y_t | y_0): keep each pixel's one-hot with probability gamma_t(c), else all-zero.

        `y0` (B, C, H, W): the first `num_classes` channels are the one-hot, the rest (edges) are kept.
        `t` (B,) original timesteps. One uniform draw per pixel, shared by all channels; drawn on the
        generator's device, so a CPU generator gives the same y_t on every device. `uniform` (B, H, W) in [0, 1)
        replaces the draw (training takes its slice of draws made for the whole global batch).
        """
        if not self.enabled:
            return y0
        k = self.num_classes if num_classes is None else num_classes
        onehot, rest = y0[:, :k], y0[:, k:]
        b, _, h, w = onehot.shape
        gamma = self.gamma.to(y0.device)[t.long().clamp(0, self.num_timesteps)]  # (B, K)
        keep_p = torch.einsum("bkhw,bk->bhw", onehot.float(), gamma)  # gamma of each pixel's class
        keep_p = keep_p + (onehot.sum(1) == 0).float()  # all-zero pixels stay all-zero
        if uniform is not None:
            assert uniform.shape == (b, h, w), f"uniform {tuple(uniform.shape)} != {(b, h, w)}"
            u = uniform.to(y0.device)
        else:
            dev = generator.device if generator is not None else y0.device
            u = torch.rand((b, h, w), generator=generator, device=dev).to(y0.device)
        keep = (u < keep_p).to(y0.dtype)[:, None]
        return torch.cat([onehot * keep, rest], dim=1)


def estimate_kappa(onehot_area: torch.Tensor, presence: torch.Tensor, kappa_max: float = 1e4) -> torch.Tensor:
    """kappa_c = min(kappa_max, 1 / A_c), A_c = presence_c * area_c: the mean area fraction of class c.

    `presence` (K,) is the fraction of images containing c (rarity), `onehot_area` (K,) the mean area
    fraction of c in the images that contain it (size). kappa grows with both 1/size and 1/presence; a class
    never seen gets kappa_max (kept as long as possible).
    """
    a = presence.double() * onehot_area.double()
    kappa = torch.where(a > 0, 1.0 / a.clamp(min=1e-300), torch.full_like(a, kappa_max))
    return kappa.clamp(max=kappa_max)


def label_statistics(index_maps, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean area fraction where present, presence rate) per class from an iterable of (B, H, W) index maps."""
    area_sum = torch.zeros(num_classes, dtype=torch.float64)
    present = torch.zeros(num_classes, dtype=torch.float64)
    n = 0
    for idx in index_maps:
        idx = idx.reshape(idx.shape[0], -1)
        valid = idx >= 0
        counts = torch.zeros(idx.shape[0], num_classes, dtype=torch.float64)
        counts.scatter_add_(1, idx.clamp(min=0), valid.double())
        frac = counts / idx.shape[1]
        area_sum += frac.sum(0)
        present += (counts > 0).double().sum(0)
        n += idx.shape[0]
    presence = present / max(n, 1)
    area = torch.where(present > 0, area_sum / present.clamp(min=1), torch.zeros_like(area_sum))
    return area, presence


def load_kappa(path: str | Path, num_classes: int, unlabeled_index: int | None = None) -> tuple[float, ...]:
    """Published per-dataset kappa array (`ade20k_psiphi.npy` etc.); the unlabeled class is forced to 0.5."""
    try:
        arr = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read kappa array {path}: {e}") from None
    arr = np.asarray(arr, dtype=np.float64).reshape(-1)
    if arr.shape[0] != num_classes:
        raise ValueError(f"kappa array {path} has {arr.shape[0]} entries, the model has {num_classes} classes")
    if not np.isfinite(arr).all():
        raise ValueError(f"kappa array {path} contains NaN or inf")
    if unlabeled_index is not None:
        arr[unlabeled_index] = 0.5
    return tuple(float(v) for v in arr)
