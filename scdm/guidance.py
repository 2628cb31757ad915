"""The conditional denoiser used by every sampler: Label Diffusion redrawn per step, classifier-free guidance.

eps = eps_u + s (eps_c - eps_u) with eps_c = eps(x_t, y_t), eps_u = eps(x_t, 0) (SDM Eq. 11 with s' = s - 1);
only eps is guided, v is the conditional one. As in the reference, guidance applies only when s > 1: any
s <= 1 returns the conditional output and skips the null branch. Conditional and null inputs go through one batched forward that shares the
label-free encoder between them, and the null rows take SPADE's cached null modulation. With Label Diffusion
off (SDM) the label never changes, so the whole label side (SPADE gamma, beta) is computed once and reused at
every step.
"""
from __future__ import annotations

from typing import Callable

import torch

from .label_context import LabelContext
from .label_diffusion import LabelDiffusion
from .unet import UNet


ModelFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def is_guided(scale: float) -> bool:
    """Whether scale s runs the null branch at all (the reference: only for s > 1)."""
    return scale > 1.0


def apply_guidance(eps_c: torch.Tensor, eps_u: torch.Tensor, scale: float) -> torch.Tensor:
    """eps_u + s (eps_c - eps_u) for s > 1, else eps_c (SDM Eq. 11; the reference's rule)."""
    return eps_u + scale * (eps_c - eps_u) if is_guided(scale) else eps_c


def cfg_denoiser(model_fn: ModelFn, y: torch.Tensor, y_null: torch.Tensor, scale: float):
    """Turn `model_fn(x_t, t, y) -> (eps, v)` into a guided denoiser `(x_t, t) -> (eps, v)` (two forwards).

    The plain form of classifier-free guidance, for any callable; `ConditionalDenoiser` is the fused fast path.
    """
    def denoise(x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eps_c, v = model_fn(x_t, t, y)
        if not is_guided(scale):
            return eps_c, v
        eps_u, _ = model_fn(x_t, t, y_null)
        return apply_guidance(eps_c, eps_u, scale), v

    return denoise


class LabelRedraw:
    """y_t ~ q(y_t | y_user) at every evaluated step, one draw per image from its own generator (docs/method.md §5)."""

    def __init__(self, y: torch.Tensor, label_diffusion: LabelDiffusion | None, generators: list[torch.Generator],
                 num_classes: int | None = None):
        self.y, self.generators, self.num_classes = y, generators, num_classes
        self.label_diffusion = label_diffusion if label_diffusion is not None and label_diffusion.enabled else None
        self.last: torch.Tensor | None = None  # the latest y_t (B, C, H, W), for previews

    @property
    def static(self) -> bool:
        """True when the label never changes (SDM mode): its SPADE work can be done once."""
        return self.label_diffusion is None

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        if self.label_diffusion is None:
            self.last = self.y
        else:
            self.last = torch.cat([
                self.label_diffusion.q_sample(self.y[b:b + 1], t[b:b + 1], generator=g, num_classes=self.num_classes)
                for b, g in enumerate(self.generators)])
        return self.last


class ConditionalDenoiser:
    """(x_t, t) -> (eps, v) for a batch whose image b has label y[b] and generator generators[b]: the fused fast path
    of `cfg_denoiser` (one forward for the conditional and null rows, the label-free encoder shared between them)."""

    def __init__(self, model: UNet, y: torch.Tensor, label_diffusion: LabelDiffusion | None,
                 generators: list[torch.Generator], guidance: float = 1.0, num_classes: int | None = None,
                 autocast_dtype: torch.dtype | None = None):
        self.model = model
        self.labels = LabelRedraw(y, label_diffusion, generators, num_classes)  # `.last`: the latest y_t
        self.guidance = float(guidance)
        self.autocast_dtype = autocast_dtype
        self._static_ctx: LabelContext | None = None

    def _context(self, y_t: torch.Tensor) -> LabelContext:
        if self.labels.static and self._static_ctx is not None:
            return self._static_ctx
        b = y_t.shape[0]
        if is_guided(self.guidance):
            y2 = torch.cat([y_t, torch.zeros_like(y_t)])  # (2B, C, H, W): conditional rows, then the null label
            null = torch.arange(2 * b, device=y_t.device) >= b
            ctx = self.model.label_context(y2, null)
        else:
            ctx = self.model.label_context(y_t)
        if self.labels.static:
            self._static_ctx = ctx
        return ctx

    @torch.no_grad()
    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctx = self._context(self.labels(t))
        guided = is_guided(self.guidance)
        with torch.autocast(x_t.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            out = self.model(x_t, t, ctx, labels_per_image=2 if guided else 1).float()
        eps, v = out.chunk(2, dim=1)
        if guided:
            eps_c, eps_u = eps.chunk(2)
            eps = apply_guidance(eps_c, eps_u, self.guidance)
            v = v.chunk(2)[0]
        return eps, v
