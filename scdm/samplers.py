"""Reverse-process solvers over a denoiser callable (docs/method.md §5).

A denoiser maps (x_t (B, 3, H, W), t (B,) original timesteps) -> (eps, v). Each sampler walks the respaced
steps of a `Diffusion` from the last to the first, calls the denoiser once per step and reports
a `StepInfo` through `callback`. Per-image randomness comes from `noise(shape)`, which the caller
builds from one generator per image, so results do not depend on the batch size.

Notation: i -> respaced step index, t -> its original 1000-step index, x0 -> x̂_0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from .config import Sampler
from .gaussian import Diffusion, extract

Denoiser = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
NoiseFn = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class StepInfo:
    """What a sampler's callback receives at every evaluated step (progress, previews): the one callback protocol."""

    step: int  # 0-based index of this evaluation
    num_steps: int
    t: int  # original 1000-step timestep
    x_t: torch.Tensor  # (N, 3, H, W) the sample before this step
    x0: torch.Tensor  # (N, 3, H, W) processed x̂_0
    y_t: torch.Tensor | None = None  # (N, C, H, W) diffused label of the conditional branch, when the caller knows it


Callback = Callable[[StepInfo], None]


class Blend(Protocol):
    """Semantic editing hook: replace the known region of x at respaced index i (SDM Eq. 12)."""

    def __call__(self, x: torch.Tensor, i: int) -> torch.Tensor: ...


@dataclass(frozen=True)
class X0Processing:
    """What happens to x̂_0 before it is used: extrapolation, then dynamic thresholding or clipping."""

    extrapolation: float = 0.0  # x0 <- x0 + w (x0 - x0_prev) from the second step on
    dynamic_threshold: float = 0.0  # quantile p of |x0| per image; 0 means clip to [-1, 1]


def dynamic_threshold(x0: torch.Tensor, p: float) -> torch.Tensor:
    """s = max(1, quantile_p |x0|) per image; x0 <- clamp(x0, -s, s) / s (Imagen §2.3)."""
    s = torch.quantile(x0.abs().reshape(x0.shape[0], -1).float(), p, dim=1).clamp(min=1.0)
    s = s.reshape(-1, *([1] * (x0.ndim - 1)))
    return x0.clamp(-s, s) / s


def process_x0(x0: torch.Tensor, prev: torch.Tensor | None, cfg: X0Processing) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply extrapolation (remembering the extrapolated x0) and thresholding; returns (x0, new prev)."""
    if cfg.extrapolation > 0:
        if prev is not None:
            x0 = x0 + cfg.extrapolation * (x0 - prev)
        prev = x0
    x0 = dynamic_threshold(x0, cfg.dynamic_threshold) if cfg.dynamic_threshold > 0 else x0.clamp(-1, 1)
    return x0, prev


def _index(i: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)


def ancestral_step(diffusion: Diffusion, x: torch.Tensor, i: int, x0: torch.Tensor, v: torch.Tensor,
                   noise: torch.Tensor | None) -> torch.Tensor:
    """x_{t-1} = posterior mean(x̂_0, x_t) + exp(log var / 2) z with the learned-range variance (DDPM Alg. 2)."""
    ii = _index(i, x)
    mean, _ = diffusion.q_posterior(x0, x, ii)
    if i == 0 or noise is None:
        return mean
    return mean + torch.exp(0.5 * diffusion.model_log_variance(v, ii)) * noise


def ddim_step(diffusion: Diffusion, x: torch.Tensor, i: int, x0: torch.Tensor, eta: float,
              noise: torch.Tensor | None) -> torch.Tensor:
    """DDIM Eq. 12 from respaced step i to i-1, with eps re-derived from the processed x̂_0."""
    ii = _index(i, x)
    eps = diffusion.predict_eps(x, ii, x0)
    acp, acp_prev = extract(diffusion.alphas_cumprod, ii, 4), extract(diffusion.alphas_cumprod_prev, ii, 4)
    sigma = eta * ((1 - acp_prev) / (1 - acp)).sqrt() * (1 - acp / acp_prev).sqrt()
    out = acp_prev.sqrt() * x0 + (1 - acp_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0 and noise is not None and i > 0:
        out = out + sigma * noise
    return out


def dpmpp_2m_step(diffusion: Diffusion, x: torch.Tensor, i: int, x0: torch.Tensor,
                  x0_prev: torch.Tensor | None, h_prev: float | None) -> tuple[torch.Tensor, float | None]:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) from respaced step i to i-1 in log-SNR lambda; returns (x, h)."""
    if i == 0:
        return x0, None
    acp = diffusion.alphas_cumprod.double()
    lam = lambda j: 0.5 * (torch.log(acp[j]) - torch.log1p(-acp[j]))  # noqa: E731  lambda = log(alpha / sigma)
    h = float(lam(i - 1) - lam(i))
    sigma_ratio = float(((1 - acp[i - 1]) / (1 - acp[i])).sqrt())
    alpha_next = float(acp[i - 1].sqrt())
    if x0_prev is None or h_prev is None or i == 1:  # first order at the start and into t=0 (lower_order_final)
        d = x0
    else:
        r = h_prev / h
        d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * x0_prev
    return sigma_ratio * x - alpha_next * torch.expm1(torch.tensor(-h)).item() * d, h


def _loop(step, denoise: Denoiser, diffusion: Diffusion, x: torch.Tensor, x0_processing: X0Processing,
          callback: Callback | None, blend: Blend | None) -> torch.Tensor:
    """The shared walk over respaced steps i = S-1 .. 0: evaluate, process x̂_0, report, step, blend."""
    steps = diffusion.num_steps
    x0_prev_extrap = None
    for n, i in enumerate(reversed(range(steps))):
        t = diffusion.timesteps[i].to(x.device).expand(x.shape[0])
        eps, v = denoise(x, t)
        x0 = diffusion.predict_x0(x, _index(i, x), eps)
        x0, x0_prev_extrap = process_x0(x0, x0_prev_extrap, x0_processing)
        if callback is not None:
            callback(StepInfo(n, steps, int(diffusion.timesteps[i]), x, x0))
        x = step(x, i, x0, v)
        if blend is not None:
            x = blend(x, i - 1)
    return x


def sample_ancestral(denoise: Denoiser, diffusion: Diffusion, x: torch.Tensor, noise: NoiseFn, *,
                     x0_processing: X0Processing = X0Processing(), callback: Callback | None = None,
                     blend: Blend | None = None, **_: object) -> torch.Tensor:
    """The reference sampler: ancestral steps with the learned-range variance (DDPM Alg. 2, Improved DDPM)."""
    return _loop(lambda x, i, x0, v: ancestral_step(diffusion, x, i, x0, v, noise() if i > 0 else None),
                 denoise, diffusion, x, x0_processing, callback, blend)


def sample_ddim(denoise: Denoiser, diffusion: Diffusion, x: torch.Tensor, noise: NoiseFn, *, eta: float = 0.0,
                x0_processing: X0Processing = X0Processing(), callback: Callback | None = None,
                blend: Blend | None = None, **_: object) -> torch.Tensor:
    """DDIM (Song et al. 2021, Eq. 12) with stochasticity eta; eta = 0 is deterministic given x_T."""
    return _loop(lambda x, i, x0, v: ddim_step(diffusion, x, i, x0, eta, noise() if (eta > 0 and i > 0) else None),
                 denoise, diffusion, x, x0_processing, callback, blend)


def sample_dpmpp_2m(denoise: Denoiser, diffusion: Diffusion, x: torch.Tensor, noise: NoiseFn, *,
                    x0_processing: X0Processing = X0Processing(), callback: Callback | None = None,
                    blend: Blend | None = None, **_: object) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): deterministic multistep solver in data prediction."""
    memory: dict[str, object] = {"x0": None, "h": None}

    def step(x: torch.Tensor, i: int, x0: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x, memory["h"] = dpmpp_2m_step(diffusion, x, i, x0, memory["x0"], memory["h"])
        memory["x0"] = x0
        return x

    return _loop(step, denoise, diffusion, x, x0_processing, callback, blend)


SAMPLERS = {Sampler.ANCESTRAL: sample_ancestral, Sampler.DDIM: sample_ddim, Sampler.DPMPP_2M: sample_dpmpp_2m}


def sample(kind: Sampler | str, denoise: Denoiser, diffusion: Diffusion, x: torch.Tensor, noise: NoiseFn, *,
           x0_processing: X0Processing = X0Processing(), eta: float = 0.0,
           callback: Callback | None = None, blend: Blend | None = None) -> torch.Tensor:
    """Run the sampler registered for `kind` from x_T; returns x̂_0 in [-1, 1]-ish."""
    try:
        fn = SAMPLERS[Sampler(kind)]
    except ValueError:
        raise ValueError(f"unknown sampler {kind!r}; use one of {[k.value for k in Sampler]}") from None
    return fn(denoise, diffusion, x, noise, x0_processing=x0_processing, eta=eta, callback=callback, blend=blend)
