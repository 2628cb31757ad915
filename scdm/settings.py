"""Sampling settings: what a caller asks for (`None` = the checkpoint's default), resolved in one place.

`generate`, the bench (its cells are identified by the resolved settings) and the demo all use
`SamplingSettings`; `resolve` turns one into a fully specified value for a card on a device, following the
reference where the card is silent:
- x̂_0 extrapolation is the ancestral sampler's (DDIM and DPM-Solver++ never extrapolate unless asked);
- sampling without respacing (steps = T) is the reference's 1000-step mode: no extrapolation and plain
  clipping instead of dynamic thresholding, unless they are asked for explicitly;
- eta only matters to DDIM (resolved to 0 elsewhere); precision becomes the dtype the device will run.

Files (the bench's `[[samplers]]`, the demo's settings.json) are read with `scdm.serialize.from_json_value(
SamplingSettings, data, where)` and written with `identity` (`to_json_value`).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

import torch

from .config import LabelSchedule, ModelCard, Precision, Sampler, Spacing
from .gaussian import space_timesteps
from .precision import autocast_dtype
from .serialize import to_json_value


@dataclass(frozen=True)
class SamplingSettings:
    """Generation settings; every `None` is the model card's default (`SamplerConfig`)."""

    sampler: Sampler | None = None  # ancestral (reference), ddim, dpmpp_2m
    steps: int | None = None  # model evaluations (respaced steps)
    spacing: Spacing | None = None  # ddim (the reference's `ddimN`) or sections (even split of 0..T-1)
    guidance: float | None = None  # classifier-free guidance s; s <= 1 is conditional only
    extrapolation: float | None = None  # x̂_0 extrapolation weight; 0 disables
    dynamic_threshold: float | None = None  # quantile of |x̂_0|; 0 clips to [-1, 1]
    eta: float | None = None  # DDIM stochasticity in [0, 1]
    precision: Precision | None = None  # fp32, bf16, fp16 (GPU), auto, auto-fp16
    label_diffusion: bool | None = None  # Label Diffusion at generation time; None = on for SCDM cards

    def __post_init__(self) -> None:
        for name, kind in (("sampler", Sampler), ("spacing", Spacing), ("precision", Precision)):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                try:
                    object.__setattr__(self, name, kind(value))
                except ValueError:
                    raise ValueError(f"unknown {name} {value!r}; use one of {[k.value for k in kind]}") from None
        if self.steps is not None:
            if isinstance(self.steps, bool) or not isinstance(self.steps, numbers.Integral):
                raise ValueError(f"steps must be a whole number, got {self.steps!r}")
            object.__setattr__(self, "steps", int(self.steps))
        for name in ("guidance", "extrapolation", "dynamic_threshold", "eta"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, numbers.Real):
                    raise ValueError(f"{name} must be a number, got {value!r}")
                object.__setattr__(self, name, float(value))
        if self.label_diffusion is not None and not isinstance(self.label_diffusion, bool):
            raise ValueError(f"label_diffusion must be true or false, got {self.label_diffusion!r}")

    def given(self) -> dict[str, object]:
        """The fields that are set (what the user changed from the card's defaults)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


def resolve(card: ModelCard, settings: SamplingSettings | None, device: torch.device | str) -> SamplingSettings:
    """Every field concrete for `card` on `device`; raises ValueError for a setting the device cannot run."""
    s = settings or SamplingSettings()
    d = card.sampler
    sampler = s.sampler or d.sampler
    steps = d.steps if s.steps is None else s.steps
    if not 1 <= steps <= card.diffusion.num_timesteps:
        raise ValueError(f"steps must be in [1, {card.diffusion.num_timesteps}], got {steps}")
    full = steps == card.diffusion.num_timesteps  # the reference's 1000-step mode: no x̂_0 tricks by default
    extrapolation = s.extrapolation
    if extrapolation is None:
        extrapolation = d.extrapolation if sampler == Sampler.ANCESTRAL and not full else 0.0
    dynamic_threshold = s.dynamic_threshold
    if dynamic_threshold is None:
        dynamic_threshold = 0.0 if full else d.dynamic_threshold
    eta = (d.eta if s.eta is None else s.eta) if sampler == Sampler.DDIM else 0.0
    guidance = d.guidance if s.guidance is None else s.guidance
    dtype = autocast_dtype(d.precision if s.precision is None else s.precision, torch.device(device))
    precision = {None: Precision.FP32, torch.bfloat16: Precision.BF16, torch.float16: Precision.FP16}[dtype]
    has_ld = card.label_diffusion.schedule != LabelSchedule.NONE
    label_diffusion = has_ld if s.label_diffusion is None else s.label_diffusion
    if label_diffusion and not has_ld:
        raise ValueError(f"model {card.name or '(unnamed)'} has no Label Diffusion schedule; it can only run as SDM "
                         "(label_diffusion=False)")
    out = SamplingSettings(sampler=sampler, steps=steps, spacing=s.spacing or d.spacing, guidance=guidance,
                           extrapolation=extrapolation, dynamic_threshold=dynamic_threshold, eta=eta,
                           precision=precision, label_diffusion=label_diffusion)
    if not math.isfinite(guidance) or guidance < 0:
        raise ValueError(f"guidance must be a finite number >= 0, got {guidance}")
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    if not 0 <= dynamic_threshold < 1:
        raise ValueError(f"dynamic_threshold is a quantile in [0, 1), got {dynamic_threshold}")
    if not extrapolation >= 0:  # also refuses NaN
        raise ValueError(f"extrapolation must be a number >= 0, got {extrapolation}")
    space_timesteps(card.diffusion.num_timesteps, steps, out.spacing)  # e.g. no `ddim` stride gives 999 steps
    return out


def identity(settings: SamplingSettings) -> dict[str, object]:
    """A resolved setting as plain JSON values (bench cell identity, demo `settings.json`)."""
    if any(getattr(settings, f.name) is None for f in fields(settings)):
        raise ValueError("identity() needs resolved settings (scdm.settings.resolve)")
    return to_json_value(settings)
