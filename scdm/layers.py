"""Building blocks of the SDM U-Net: timestep embedding, SPADE, ResBlocks and attention (docs/method.md §2).

Parameter names follow the official checkpoints (`in_layers.2`, `in_norm.mlp_shared.0`, `qkv`, ...), so an
official state dict loads with no renaming.

Notation: y -> the (possibly diffused) label map, (B, K, H, W); emb -> timestep embedding, (B, 4C).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .label_context import LabelContext


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding: half cos, then half sin, frequencies exp(-ln(max_period) i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (as the official code), cast back to the input dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.float()).to(x.dtype)


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class SPADE(nn.Module):
    """SPADE(h, y) = GroupNorm_noaffine(h) * (1 + gamma(y)) + beta(y) (SDM Eq. 6; docs/method.md §2).

    The shared conv of every SPADE at one resolution runs as one fused conv inside `LabelContext`;
    gamma and beta run as one conv with concatenated weights. The all-zero (null) label's modulation
    depends only on weights and resolution, so it is cached for inference.
    """

    def __init__(self, channels: int, label_channels: int, hidden: int, groups: int):
        super().__init__()
        self.channels = channels
        self.groups = groups
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, channels, 3, padding=1)
        self.ds = 1  # downsampling factor of the feature map it modulates; set by the U-Net
        self._null_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def modulation(self, actv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma(y), beta(y) from the shared activation, as one conv over concatenated weights."""
        weight = torch.cat([self.mlp_gamma.weight, self.mlp_beta.weight], dim=0)
        bias = torch.cat([self.mlp_gamma.bias, self.mlp_beta.bias], dim=0)
        gb = F.conv2d(actv, weight.to(actv.dtype), bias.to(actv.dtype), padding=1)
        return gb[:, : self.channels], gb[:, self.channels:]

    def null_modulation(self, size: tuple[int, int], like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gamma(0), beta(0) at `size`: the conv of an all-zero map is its bias everywhere (zero padding)."""
        key = (size, like.dtype, like.device, torch.is_autocast_enabled(like.device.type),
               self.mlp_shared[0].bias._version, self.mlp_gamma.weight._version, self.mlp_beta.weight._version,
               self.mlp_gamma.bias._version, self.mlp_beta.bias._version)
        hit = self._null_cache.get(key)
        if hit is None:
            b = torch.relu(self.mlp_shared[0].bias)
            actv = b[None, :, None, None].expand(1, -1, *size).to(like.dtype)
            hit = self.modulation(actv)
            self._null_cache = {key: hit}
        return hit

    def forward(self, h: torch.Tensor, ctx: LabelContext) -> torch.Tensor:
        normed = F.group_norm(h.float(), self.groups).to(h.dtype)
        return ctx.modulate(self, h, normed)


class ResBlock(nn.Module):
    """Encoder ResBlock: GroupNorm - SiLU - conv, timestep FiLM, SiLU - dropout - zero conv (docs/method.md §2)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, *, groups: int, dropout: float,
                 use_scale_shift_norm: bool, down: bool = False, up: bool = False):
        super().__init__()
        self.use_scale_shift_norm = use_scale_shift_norm
        self.down, self.up = down, up
        self.in_layers = nn.Sequential(GroupNorm32(groups, channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, (2 if use_scale_shift_norm else 1) * out_channels))
        self.out_layers = nn.Sequential(
            GroupNorm32(groups, out_channels), nn.SiLU(), nn.Dropout(dropout),
            zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)),
        )
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: LabelContext | None = None) -> torch.Tensor:
        if self.down or self.up:
            h = self.in_layers[1](self.in_layers[0](x))
            h, x = resample(h, self.down), resample(x, self.down)
            h = self.in_layers[2](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).to(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[3](self.out_layers[2](self.out_layers[1](h)))
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class SPADEResBlock(nn.Module):
    """Decoder ResBlock: every GroupNorm replaced by SPADE; FiLM as SPADE(h, y) (1 + scale) + shift (docs/method.md §2)."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int, *, label_channels: int,
                 spade_hidden: int, groups: int, dropout: float, use_scale_shift_norm: bool,
                 down: bool = False, up: bool = False):
        super().__init__()
        self.use_scale_shift_norm = use_scale_shift_norm
        self.down, self.up = down, up
        self.in_norm = SPADE(channels, label_channels, spade_hidden, groups)
        self.in_layers = nn.Sequential(nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, (2 if use_scale_shift_norm else 1) * out_channels))
        self.out_norm = SPADE(out_channels, label_channels, spade_hidden, groups)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1)))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, ctx: LabelContext) -> torch.Tensor:
        h = self.in_layers[0](self.in_norm(x, ctx))
        if self.down or self.up:
            h, x = resample(h, self.down), resample(x, self.down)
        h = self.in_layers[1](h)
        emb_out = self.emb_layers(emb).to(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_norm(h, ctx) * (1 + scale) + shift
        else:
            h = self.out_norm(h + emb_out, ctx)
        return self.skip_connection(x) + self.out_layers(h)


def resample(x: torch.Tensor, down: bool) -> torch.Tensor:
    """2x average-pool down or nearest up (the official `resblock_updown` resampling without conv)."""
    return F.avg_pool2d(x, 2) if down else F.interpolate(x, scale_factor=2.0, mode="nearest")


class AttentionBlock(nn.Module):
    """Self-attention over pixels, heads of `head_channels`, legacy qkv channel order, zero-init output."""

    def __init__(self, channels: int, *, head_channels: int, groups: int):
        super().__init__()
        if channels % head_channels:
            raise ValueError(f"attention: {channels} channels are not divisible by num_head_channels={head_channels}")
        self.num_heads = channels // head_channels
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, ctx: LabelContext | None = None) -> torch.Tensor:
        b, c, *spatial = x.shape
        flat = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(flat))  # (B, 3C, T), per head [q, k, v] blocks ("legacy" order)
        # (B, H, T, 3ch), made contiguous: SDPA's fused kernels (flash, memory-efficient) need stride 1 in the
        # last dim and would otherwise fall back to the slow math kernel
        qkv = qkv.reshape(b, self.num_heads, 3 * c // self.num_heads, -1).transpose(-1, -2).contiguous()
        q, k, v = qkv.chunk(3, dim=-1)
        h = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, ch)
        h = h.transpose(-1, -2).reshape(b, c, -1)
        return (flat + self.proj_out(h)).reshape(b, c, *spatial)
