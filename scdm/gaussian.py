"""Gaussian image diffusion: float64 schedules, respacing, learned-range variance and the hybrid loss (docs/method.md §3).

Notation: alpha_bar -> ᾱ_t (`alphas_cumprod`), x0 -> x̂_0, beta_tilde -> β̃_t (posterior variance),
v -> the network's variance-interpolation output in [-1, 1]. All tables are float64 tensors indexed by
`extract`; `timesteps[i]` is the original 1000-step index of respaced step i.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import DiffusionConfig, NoiseSchedule, Spacing


def get_beta_schedule(schedule: NoiseSchedule, num_timesteps: int) -> torch.Tensor:
    """Linear (DDPM, scaled to T) or cosine (Improved DDPM Eq. 17) betas in float64."""
    if schedule == NoiseSchedule.LINEAR:
        scale = 1000 / num_timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=torch.float64)
    if schedule == NoiseSchedule.COSINE:
        f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
        return torch.tensor([min(1 - f((i + 1) / num_timesteps) / f(i / num_timesteps), 0.999)
                             for i in range(num_timesteps)], dtype=torch.float64)
    raise ValueError(f"unknown noise schedule {schedule!r}; use one of {[s.value for s in NoiseSchedule]}")


def space_timesteps(num_timesteps: int, steps: int, spacing: Spacing | str = Spacing.SECTIONS) -> list[int]:
    """The original steps a `steps`-step sampler visits, sorted (guided-diffusion's `space_timesteps`).

    `Spacing.DDIM` ("ddimN"): range(0, T, s) for the smallest integer stride s giving exactly `steps` values;
    `Spacing.SECTIONS` (plain "N"): `steps` indices evenly strided over [0, T-1], both ends included, rounded;
    `Spacing.QUAD`: round((T-1) (i / (N-1))^2) for i < N, raised where needed to one above the previous step.
    """
    try:
        spacing = Spacing(spacing)
    except ValueError:
        raise ValueError(f"unknown timestep spacing {spacing!r}; use one of {[s.value for s in Spacing]}") from None
    if isinstance(steps, bool) or not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    if spacing == Spacing.DDIM:
        for stride in range(1, num_timesteps + 1):  # the reference stops at T - 1 (so `ddim1` fails there)
            if len(range(0, num_timesteps, stride)) == steps:
                return list(range(0, num_timesteps, stride))
        near = sorted({len(range(0, num_timesteps, s)) for s in range(1, num_timesteps)}, key=lambda n: abs(n - steps))[:3]
        raise ValueError(f"no integer stride gives exactly {steps} of {num_timesteps} steps with spacing 'ddim'; "
                         f"use spacing 'sections' or a step count such as {sorted(near)}")
    if steps == 1:
        return [num_timesteps - 1]
    if spacing == Spacing.QUAD:
        out = [0]
        for i in range(1, steps):  # t_i >= i and the quadratic's gaps only grow, so the last one is T - 1
            out.append(max(round((num_timesteps - 1) * (i / (steps - 1)) ** 2), out[-1] + 1))
        return out
    # guided-diffusion: frac_stride = (size - 1) / (N - 1), taken at round(cur_idx) with cur_idx += frac_stride
    stride = (num_timesteps - 1) / (steps - 1)
    out, cur = [], 0.0
    for _ in range(steps):
        out.append(round(cur))
        cur += stride
    return sorted(set(out))


def extract(table: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """table[t] as float32 on t's device, shaped (B, 1, ..., 1) for broadcasting over `ndim` dims."""
    out = table.to(t.device)[t].float()
    return out.reshape(-1, *([1] * (ndim - 1)))


@dataclass(frozen=True)
class Diffusion:
    """Tables of one (possibly respaced) diffusion; index i runs over `timesteps`."""

    betas: torch.Tensor
    timesteps: torch.Tensor  # (S,) original 1000-step index of each respaced step

    @classmethod
    def from_config(cls, config: DiffusionConfig, steps: int | None = None,
                    spacing: Spacing | str = Spacing.DDIM) -> "Diffusion":
        """The full diffusion, or the one respaced to `steps` steps chosen by the `spacing` rule."""
        base = get_beta_schedule(config.noise_schedule, config.num_timesteps)
        if steps is None or steps == config.num_timesteps:
            return cls(base, torch.arange(config.num_timesteps))
        return cls.respaced(base, space_timesteps(config.num_timesteps, steps, spacing))

    @classmethod
    def respaced(cls, base_betas: torch.Tensor, use: list[int]) -> "Diffusion":
        """Keep the ᾱ of the steps in `use`; new betas 1 - ᾱ_i / ᾱ_prev (Improved DDPM §4)."""
        acp = torch.cumprod(1 - base_betas, 0)
        last, betas = 1.0, []
        for i in use:
            betas.append(1 - acp[i] / last)
            last = acp[i]
        return cls(torch.stack(betas).to(torch.float64), torch.tensor(use))

    @property
    def num_steps(self) -> int:
        return len(self.betas)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return torch.cumprod(1 - self.betas, 0)

    @property
    def alphas_cumprod_prev(self) -> torch.Tensor:
        return torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])

    @property
    def posterior_variance(self) -> torch.Tensor:
        """β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) (DDPM Eq. 7)."""
        return self.betas * (1 - self.alphas_cumprod_prev) / (1 - self.alphas_cumprod)

    @property
    def posterior_log_variance_clipped(self) -> torch.Tensor:
        """log β̃_t with the t=0 entry (zero variance) replaced by the t=1 value."""
        pv = self.posterior_variance
        if len(pv) == 1:
            return torch.log(self.betas)
        return torch.log(torch.cat([pv[1:2], pv[1:]]))

    def q_sample(self, x0: torch.Tensor, i: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) eps (DDPM Eq. 4)."""
        acp = self.alphas_cumprod
        return extract(acp.sqrt(), i, x0.ndim) * x0 + extract((1 - acp).sqrt(), i, x0.ndim) * noise

    def q_posterior(self, x0: torch.Tensor, x_t: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(x_{t-1} | x_t, x0) (DDPM Eq. 6-7)."""
        acp, acp_prev = self.alphas_cumprod, self.alphas_cumprod_prev
        coef1 = self.betas * acp_prev.sqrt() / (1 - acp)
        coef2 = (1 - acp_prev) * (1 - self.betas).sqrt() / (1 - acp)
        mean = extract(coef1, i, x_t.ndim) * x0 + extract(coef2, i, x_t.ndim) * x_t
        return mean, extract(self.posterior_log_variance_clipped, i, x_t.ndim)

    def predict_x0(self, x_t: torch.Tensor, i: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x̂_0 = (x_t - sqrt(1 - ᾱ_t) eps) / sqrt(ᾱ_t)."""
        acp = self.alphas_cumprod
        return extract((1 / acp).sqrt(), i, x_t.ndim) * x_t - extract((1 / acp - 1).sqrt(), i, x_t.ndim) * eps

    def predict_eps(self, x_t: torch.Tensor, i: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """eps implied by x_t and x̂_0 (inverse of `predict_x0`)."""
        acp = self.alphas_cumprod
        return (extract((1 / acp).sqrt(), i, x_t.ndim) * x_t - x0) / extract((1 / acp - 1).sqrt(), i, x_t.ndim)

    def model_log_variance(self, v: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        """log var = f log β_t + (1 - f) log β̃_t with f = (v + 1) / 2 (Improved DDPM Eq. 15)."""
        f = (v + 1) / 2
        return f * extract(torch.log(self.betas), i, v.ndim) + (1 - f) * extract(self.posterior_log_variance_clipped, i, v.ndim)


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _approx_std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def discretized_gaussian_log_likelihood(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log p(x) of 8-bit images in [-1, 1] under a Gaussian discretised to bins of width 2/255 (DDPM §3.3)."""
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _approx_std_normal_cdf(inv_std * (centered + 1 / 255))
    cdf_min = _approx_std_normal_cdf(inv_std * (centered - 1 / 255))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1 - cdf_min).clamp(min=1e-12))
    log_probs = torch.where(
        x < -0.999, log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log((cdf_plus - cdf_min).clamp(min=1e-12))),
    )
    return log_probs


def hybrid_loss(diffusion: Diffusion, out: torch.Tensor, x0: torch.Tensor, x_t: torch.Tensor,
                i: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Per-sample mse(eps) + L_vb(t) in bits/dim with the mean detached (Improved DDPM Eq. 16; docs/method.md §3)."""
    eps, v = out.float().chunk(2, dim=1)
    mse = (noise - eps).pow(2).mean(dim=(1, 2, 3))
    log_var = diffusion.model_log_variance(v, i)
    mean, _ = diffusion.q_posterior(diffusion.predict_x0(x_t, i, eps.detach()), x_t, i)
    true_mean, true_log_var = diffusion.q_posterior(x0, x_t, i)
    kl = normal_kl(true_mean, true_log_var, mean, log_var).mean(dim=(1, 2, 3)) / math.log(2.0)
    nll = -discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var).mean(dim=(1, 2, 3)) / math.log(2.0)
    return mse + torch.where(i == 0, nll, kl)
