"""The SDM U-Net: an encoder that never sees the label, a middle and decoder modulated by SPADE (docs/method.md §2).

The network is raw: `forward(x_t, t, y) -> (B, 6, H, W)` (eps, then the variance interpolation v); it never
sees a beta. Module names equal the official checkpoints' (`input_blocks.N.M`, `middle_block`,
`output_blocks`, `out`), so `load_state_dict` takes an official state dict as it is.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import UNetConfig
from .label_context import LabelContext
from .layers import SPADE, AttentionBlock, GroupNorm32, ResBlock, SPADEResBlock, timestep_embedding, zero_module


class Block(nn.Sequential):
    """A U-Net stage: layers called in order with the timestep embedding and the label context."""

    def forward(self, h: torch.Tensor, emb: torch.Tensor, ctx: LabelContext) -> torch.Tensor:  # type: ignore[override]
        for layer in self:
            h = layer(h) if isinstance(layer, nn.Conv2d) else layer(h, emb, ctx)
        return h


class UNet(nn.Module):
    """SDM's conditional U-Net; `y` is the one-hot (possibly diffused) label with the optional edge channel."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = c = config
        ch, emb_ch, g = c.model_channels, 4 * c.model_channels, c.groupnorm_groups
        res = dict(emb_channels=emb_ch, groups=g, dropout=c.dropout, use_scale_shift_norm=c.use_scale_shift_norm)
        spade = dict(res, label_channels=c.label_channels, spade_hidden=c.spade_hidden)
        attn = dict(head_channels=c.num_head_channels, groups=g)

        self.time_embed = nn.Sequential(nn.Linear(ch, emb_ch), nn.SiLU(), nn.Linear(emb_ch, emb_ch))
        self.input_blocks = nn.ModuleList([Block(nn.Conv2d(c.in_channels, ch, 3, padding=1))])
        skips, cur, ds = [ch], ch, 1
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks):
                layers: list[nn.Module] = [ResBlock(cur, out_channels=mult * ch, **res)]
                cur = mult * ch
                if ds in c.attention_ds:
                    layers.append(AttentionBlock(cur, **attn))
                self.input_blocks.append(Block(*layers))
                skips.append(cur)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(Block(ResBlock(cur, out_channels=cur, down=True, **res)))
                skips.append(cur)
                ds *= 2

        self.middle_block = Block(
            SPADEResBlock(cur, out_channels=cur, **spade), AttentionBlock(cur, **attn),
            SPADEResBlock(cur, out_channels=cur, **spade),
        )
        self._tag_spades(self.middle_block, ds)

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mult))):
            for i in range(c.num_res_blocks + 1):
                layers = [SPADEResBlock(cur + skips.pop(), out_channels=mult * ch, **spade)]
                cur = mult * ch
                if ds in c.attention_ds:
                    layers.append(AttentionBlock(cur, **attn))
                block = Block(*layers)
                self._tag_spades(block, ds)
                if level and i == c.num_res_blocks:
                    up = SPADEResBlock(cur, out_channels=cur, up=True, **spade)
                    up.in_norm.ds, up.out_norm.ds = ds, ds // 2  # out_norm runs after the 2x upsampling
                    block.append(up)
                    ds //= 2
                self.output_blocks.append(block)

        self.out = nn.Sequential(GroupNorm32(g, cur), nn.SiLU(), zero_module(nn.Conv2d(ch * c.channel_mult[0], c.out_channels, 3, padding=1)))
        self.spade_groups: dict[int, list[SPADE]] = {}
        for m in self.modules():
            if isinstance(m, SPADE):
                self.spade_groups.setdefault(m.ds, []).append(m)

    @staticmethod
    def _tag_spades(module: nn.Module, ds: int) -> None:
        for m in module.modules():
            if isinstance(m, SPADE):
                m.ds = ds

    def label_context(self, y: torch.Tensor, null: torch.Tensor | None = None) -> LabelContext:
        """Wrap label y (B, K, H, W); rows where `null` is True are the all-zero guidance label."""
        if y.shape[1] != self.config.label_channels:
            raise ValueError(f"label has {y.shape[1]} channels, the model expects {self.config.label_channels}")
        return LabelContext(y, self.spade_groups, null)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | LabelContext,
                labels_per_image: int = 1) -> torch.Tensor:
        """eps and v for x_t (B, 3, H, W) at original timesteps t (B,) under label y.

        With `labels_per_image` = k, y holds k labels per image as k stacked batches (for guidance:
        conditional, then null) and the output has k B rows. The encoder never sees the label, so it runs
        once on the B images and its features are shared by the k decoder passes.
        """
        ctx = y if isinstance(y, LabelContext) else self.label_context(y)
        if ctx.batch != labels_per_image * x_t.shape[0]:
            raise ValueError(f"label batch {ctx.batch} != {labels_per_image} x image batch {x_t.shape[0]}")
        emb = self.time_embed(timestep_embedding(t, self.config.model_channels))
        h, hs = x_t, []
        for block in self.input_blocks:
            h = block(h, emb, ctx)
            hs.append(h)
        if labels_per_image > 1:
            h, emb = torch.cat([h] * labels_per_image), torch.cat([emb] * labels_per_image)
            hs = [torch.cat([s] * labels_per_image) for s in hs]
        h = self.middle_block(h, emb, ctx)
        for block in self.output_blocks:
            h = block(torch.cat([h, hs.pop()], dim=1), emb, ctx)
        return self.out(h).float()
