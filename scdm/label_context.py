"""The label side of one U-Net forward: SPADE work shared across blocks and reused across calls.

Every SPADE in the decoder resizes the same label y to its feature size and runs its own 3x3 conv on it.
`LabelContext` resizes y once per resolution and runs the shared convs of all SPADEs at that resolution as
one fused conv (their weights concatenated). Rows marked `null` (the all-zero guidance label) skip the label
convs entirely and take the cached null modulation. A context can be kept across sampler steps when y does
not change (SDM mode), so the label side is computed once per image instead of once per step.
"""
from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn


class SPADE(Protocol):
    """What a context needs of a SPADE layer (`scdm.layers.SPADE`): its resolution tag and its convs."""

    ds: int  # downsampling factor of the features it modulates
    mlp_shared: nn.Sequential  # [0] is the shared conv on the label

    def modulation(self, actv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def null_modulation(self, size: tuple[int, int], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class LabelContext:
    """Label y (B, K, H, W) plus per-SPADE caches of the shared activation and of gamma, beta."""

    def __init__(self, y: torch.Tensor, groups: dict[int, list[SPADE]], null: torch.Tensor | None = None):
        self.y = y
        self.groups = groups  # ds -> SPADE modules at that downsampling factor
        self.null = None if null is None or not bool(null.any()) else null.to(torch.bool)
        self._null_is_suffix = self.null is not None and bool((self.null.int().diff() >= 0).all())
        self._actv: dict[int, torch.Tensor] = {}  # id(spade) -> shared activation of the conditional rows
        self._mod: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.cacheable = not torch.is_grad_enabled()  # gamma/beta reuse only when nothing needs gradients

    @property
    def batch(self) -> int:
        return self.y.shape[0]

    def _conditional_rows(self) -> torch.Tensor:
        return self.y if self.null is None else self.y[~self.null]

    def _shared_activation(self, spade: SPADE, size: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
        key = id(spade)
        if key not in self._actv:
            group = self.groups.get(spade.ds, [spade])
            if spade not in group:
                group = [spade]
            y = self._conditional_rows().to(dtype)
            y = F.interpolate(y, size=size, mode="nearest") if y.shape[-2:] != size else y  # (B', K, h, w)
            weight = torch.cat([s.mlp_shared[0].weight for s in group], dim=0).to(dtype)
            bias = torch.cat([s.mlp_shared[0].bias for s in group], dim=0).to(dtype)
            actv = torch.relu(F.conv2d(y, weight, bias, padding=1))  # (B', n * hidden, h, w)
            for s, a in zip(group, actv.split([s.mlp_shared[0].out_channels for s in group], dim=1)):
                self._actv[id(s)] = a
        actv = self._actv.pop(key) if not self.cacheable else self._actv[key]
        assert actv.shape[-2:] == size, "SPADE resolution tags disagree with the feature sizes"
        return actv

    def _conditional_modulation(self, spade: SPADE, size: tuple[int, int],
                                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """1 + gamma(y), beta(y) for the conditional rows; kept for the next call when cacheable."""
        key = id(spade)
        hit = self._mod.get(key)
        if hit is None:
            gamma, beta = spade.modulation(self._shared_activation(spade, size, dtype))
            hit = (1 + gamma, beta)
            if self.cacheable:
                self._mod[key] = hit
        return hit

    def modulate(self, spade: SPADE, h: torch.Tensor, normed: torch.Tensor) -> torch.Tensor:
        """normed (1 + gamma) + beta for every row, gamma and beta taken at the size of feature map `h`."""
        size = tuple(h.shape[-2:])
        dtype = torch.get_autocast_dtype(h.device.type) if torch.is_autocast_enabled(h.device.type) else h.dtype
        if self.null is None:
            scale, shift = self._conditional_modulation(spade, size, dtype)
            return torch.addcmul(shift, normed, scale)
        g0, b0 = spade.null_modulation(size, torch.empty((), dtype=dtype, device=h.device))  # (1, C, h, w)
        if self.null.all():
            return torch.addcmul(b0, normed, 1 + g0)
        scale, shift = self._conditional_modulation(spade, size, dtype)
        n = scale.shape[0]
        if self._null_is_suffix:  # the guidance layout: conditional rows, then null rows
            return torch.cat([torch.addcmul(shift, normed[:n], scale), torch.addcmul(b0, normed[n:], 1 + g0)])
        out = torch.empty_like(normed)
        out[~self.null] = torch.addcmul(shift, normed[~self.null], scale).to(out.dtype)
        out[self.null] = torch.addcmul(b0, normed[self.null], 1 + g0).to(out.dtype)
        return out
