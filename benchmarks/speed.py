"""Sampling and training throughput against the reference algorithm, at a fixed small config.

Config: 64 px, 64 base channels, multipliers 1,2,2,4, attention at 16 and 8 px, 12 classes, 25 steps,
guidance 1.5, batch 4 (sampling) / 16 (training), random weights (speed does not depend on them).

Reference algorithm (docs/method.md §8): every SPADE runs its own shared conv and separate gamma and beta convs, and
guidance runs two forwards per step, the null branch recomputing SPADE on an all-zero label; fp32.

With `--official-code DIR` (a checkout of github.com/mlvlab/SCDM, not shipped here) the reference row is
also timed with the official `guided_diffusion.unet.UNetModel` in place of our network, same weights' shapes.

    python -m benchmarks.speed [--threads 2] [--repeats 3] [--skip-train] [--official-code DIR]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from scdm.config import DiffusionConfig, LabelDiffusionConfig, LabelSchedule, LabelSpec, ModelCard, UNetConfig
from scdm.gaussian import Diffusion, hybrid_loss
from scdm.label_context import LabelContext
from scdm.pipeline import Pipeline

CFG = UNetConfig(image_size=64, model_channels=64, channel_mult=(1, 2, 2, 4), num_res_blocks=2, attention_ds=(4, 8),
                 num_head_channels=64, label_channels=12, spade_hidden=128, groupnorm_groups=32)


class ReferenceContext(LabelContext):
    """SPADE as the official code computes it: per block, resize, shared conv, gamma conv, beta conv."""

    def modulate(self, spade, h, normed):
        seg = F.interpolate(self.y.to(h.dtype), size=h.shape[-2:], mode="nearest")
        actv = spade.mlp_shared(seg)
        return normed * (1 + spade.mlp_gamma(actv)) + spade.mlp_beta(actv)


def reference_denoise(model, y, guidance):
    """Two separate forwards per step, SPADE recomputed on the all-zero label (guided-diffusion style)."""
    def denoise(x, t):
        out_c = model(x, t.float(), ReferenceContext(y, {}))
        out_u = model(x, t.float(), ReferenceContext(torch.zeros_like(y), {}))
        eps = out_u[:, :3] + guidance * (out_c[:, :3] - out_u[:, :3])
        return eps, out_c[:, 3:]
    return denoise


def make_pipe(schedule=LabelSchedule.CLASSWISE) -> Pipeline:
    from scdm.unet import UNet

    torch.manual_seed(0)
    card = ModelCard(unet=CFG, labels=LabelSpec(num_classes=12),
                     label_diffusion=LabelDiffusionConfig(schedule, tuple(float(k) for k in np.geomspace(1, 300, 12))))
    return Pipeline(UNet(CFG), card, "cpu")


def time_call(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def official_unet(code_dir: str) -> torch.nn.Module:
    """The official network at CFG, imported from a checkout of the official code (for timing only)."""
    import sys

    sys.path.insert(0, code_dir)
    from guided_diffusion.unet import UNetModel  # type: ignore[import-not-found]

    return UNetModel(image_size=64, in_channels=3, model_channels=CFG.model_channels, out_channels=6,
                     num_res_blocks=CFG.num_res_blocks, attention_resolutions=CFG.attention_ds,
                     channel_mult=CFG.channel_mult, num_classes=CFG.label_channels,
                     num_head_channels=CFG.num_head_channels, use_scale_shift_norm=True, resblock_updown=True).eval()


def bench_sampling(repeats: int, official_code: str | None = None) -> list[tuple[str, float]]:
    from scdm.samplers import X0Processing, sample

    pipe = make_pipe()
    labels = torch.randint(0, 12, (4, 64, 64))
    diffusion = Diffusion.from_config(DiffusionConfig(), 25)

    def reference():
        g = torch.Generator().manual_seed(0)
        y_user = pipe.encode(labels)

        def denoise(x, t):  # the reference also redraws y_t every step (SCDM), unseeded per pixel
            y_t = pipe.label_diffusion.q_sample(y_user, t, generator=g)
            return reference_denoise(pipe.model, y_t, 1.5)(x, t)
        with torch.no_grad():
            sample("ancestral", denoise, diffusion, torch.randn(4, 3, 64, 64, generator=g),
                   lambda: torch.randn(4, 3, 64, 64, generator=g), x0_processing=X0Processing(0.8, 0.95))

    rows = [("reference (2 forwards, SPADE on zeros, fp32)", 4 / time_call(reference, repeats))]
    if official_code:
        official = official_unet(official_code)

        def official_reference():
            g = torch.Generator().manual_seed(0)
            y_user = pipe.encode(labels)

            def denoise(x, t):
                y_t = pipe.label_diffusion.q_sample(y_user, t, generator=g)
                out_c, out_u = official(x, t.float(), y_t), official(x, t.float(), torch.zeros_like(y_t))
                return out_u[:, :3] + 1.5 * (out_c[:, :3] - out_u[:, :3]), out_c[:, 3:]
            with torch.no_grad():
                sample("ancestral", denoise, diffusion, torch.randn(4, 3, 64, 64, generator=g),
                       lambda: torch.randn(4, 3, 64, 64, generator=g), x0_processing=X0Processing(0.8, 0.95))

        rows.append(("reference, official UNetModel code", 4 / time_call(official_reference, repeats)))
    rows.append(("ours fp32 (one batched CFG forward, shared encoder, cached null SPADE, fused convs)",
                 4 / time_call(lambda: pipe.generate(labels, steps=25, guidance=1.5), repeats)))
    rows.append(("ours bf16 autocast",
                 4 / time_call(lambda: pipe.generate(labels, steps=25, guidance=1.5, precision="bf16"), repeats)))
    sdm = make_pipe(LabelSchedule.NONE)
    rows.append(("ours SDM mode fp32 (label side computed once)",
                 4 / time_call(lambda: sdm.generate(labels, steps=25, guidance=1.5), repeats)))
    return rows


def bench_training(repeats: int) -> list[tuple[str, float]]:
    from scdm.unet import UNet

    torch.manual_seed(0)
    model = UNet(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    d = Diffusion.from_config(DiffusionConfig())
    x0 = torch.rand(16, 3, 64, 64) * 2 - 1
    y = F.one_hot(torch.randint(0, 12, (16, 64, 64)), 12).permute(0, 3, 1, 2).float()

    def step(reference: bool, dtype):
        t = torch.randint(0, 1000, (16,))
        noise = torch.randn_like(x0)
        xt = d.q_sample(x0, t, noise)
        ctx = ReferenceContext(y, {}) if reference else model.label_context(y)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            out = model(xt, t.float(), ctx)
        loss = hybrid_loss(d, out.float(), x0, xt, t, noise).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return [
        ("reference (fp32, per-block SPADE convs)", 16 / time_call(lambda: step(True, None), repeats)),
        ("ours fp32 (fused SPADE convs)", 16 / time_call(lambda: step(False, None), repeats)),
        ("ours bf16 autocast", 16 / time_call(lambda: step(False, torch.bfloat16), repeats)),
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--official-code", help="checkout of the official SCDM code: also time its UNetModel")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, cpu capability {torch.backends.cpu.get_cpu_capability()}")
    rows = bench_sampling(args.repeats, args.official_code)
    base = rows[0][1]
    print("\n| sampling (25 steps, guidance 1.5, batch 4) | images/s | vs reference |\n|---|---|---|")
    for name, v in rows:
        print(f"| {name} | {v:.3f} | {v / base:.2f}x |")
    if not args.skip_train:
        rows = bench_training(args.repeats)
        base = rows[0][1]
        print("\n| training step (batch 16) | images/s | vs reference |\n|---|---|---|")
        for name, v in rows:
            print(f"| {name} | {v:.2f} | {v / base:.2f}x |")


if __name__ == "__main__":
    main()
