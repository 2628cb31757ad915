"""Training: hybrid loss, condition dropout, Label Diffusion, AdamW + EMA, resume, DDP through torchrun (docs/method.md §3-4).

`train(card, config)` runs on one process or on every rank of a `torchrun` job whose process group
`scdm.distributed.setup` opened (gloo on CPU, NCCL on GPU); rank 0 writes. Step `s` draws its images, flips,
timesteps, noise and label-diffusion masks for the whole global batch from (seed, s), so the result does not depend
on the number of ranks or accumulation steps (up to float summation order). The output directory holds the
pipeline checkpoint (`config.json` + EMA `model.safetensors`), refreshed at every save, and `train_state.pt`
(weights, EMA, optimizer, step) for resuming; both are written atomically.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from . import distributed, seeds
from .checkpoint import load_training_state, save_checkpoint, save_training_state
from .config import LabelDiffusionConfig, LabelSchedule, ModelCard, TrainConfig
from .gaussian import Diffusion, hybrid_loss
from .label_diffusion import LabelDiffusion, estimate_kappa, label_statistics
from .labels import encode, raw_to_index, unlabeled_channel
from .precision import autocast_dtype
from .serialize import to_json_value
from .unet import UNet

STATE_NAME = "train_state.pt"


@dataclass
class TrainData:
    """Training arrays kept in memory: labels (N, H, W) raw ids, images (N, H, W, 3) uint8, instances or None."""

    labels: np.ndarray
    images: np.ndarray
    instances: np.ndarray | None = None


def classwise_kappa(card: ModelCard, data: TrainData, chunk: int = 1024) -> tuple[float, ...]:
    """kappa_c from the training set's label statistics (`estimate_kappa`); unlabeled forced to 0.5."""
    k = card.labels.num_classes
    maps = (raw_to_index(torch.from_numpy(data.labels[i:i + chunk].astype(np.int64)), card.labels)
            for i in range(0, len(data.labels), chunk))
    area, presence = label_statistics(maps, k)
    kappa = estimate_kappa(area, presence)
    unl = unlabeled_channel(card.labels)
    if unl is not None:
        kappa[unl] = 0.5
    return tuple(float(v) for v in kappa)


def learning_rate(config: TrainConfig, step: int) -> float:
    """lr of optimizer step `step` (0-based): linear warm-up, constant, then an optional cosine decay to lr_min."""
    lr = config.lr * min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else config.lr
    if config.decay_from is not None and step >= config.decay_from:
        span = max(1, config.steps - config.decay_from)
        progress = min(1.0, (step - config.decay_from) / span)
        lr = config.lr_min + (lr - config.lr_min) * 0.5 * (1 + math.cos(math.pi * progress))
    return lr


def _batch(data: TrainData, idx: np.ndarray, card: ModelCard, flip: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """x0 (B, 3, H, W) in [-1, 1] and y0 (B, C, H, W) for dataset rows `idx`, flipped where `flip`."""
    imgs, labs = data.images[idx], data.labels[idx]
    inst = data.instances[idx] if data.instances is not None else None
    if flip.any():
        imgs, labs = imgs.copy(), labs.copy()
        imgs[flip], labs[flip] = imgs[flip][:, :, ::-1], labs[flip][:, :, ::-1]
        if inst is not None:
            inst = inst.copy()
            inst[flip] = inst[flip][:, :, ::-1]
    x0 = torch.from_numpy(np.ascontiguousarray(imgs)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    y0 = encode(np.ascontiguousarray(labs), card.labels, edges=None if inst is None else np.ascontiguousarray(inst), device=device)
    return x0, y0


def train(card: ModelCard, config: TrainConfig, data: TrainData, out_dir: str | Path, *,
          device: str | torch.device | None = None, init_from: str | Path | None = None,
          on_log: Callable[[dict], None] | None = None) -> Path:
    """Train (or resume) the model described by `card` on `data`; returns the checkpoint directory.

    A run resumes from `out_dir/train_state.pt` when it exists; otherwise `init_from` (a checkpoint directory
    of the same architecture, e.g. the bundled EMA weights) seeds weights, EMA and the step counter, with a
    fresh optimizer: how a run continues on a machine that lost its training state.
    """
    out_dir = Path(out_dir)
    job = distributed.current(device)  # ValueError for "cuda" without CUDA or a LOCAL_RANK beyond the GPUs
    rank, world, device = job.rank, job.world_size, job.device
    if config.batch_size % (world * config.grad_accum):
        raise ValueError(f"batch_size {config.batch_size} must be divisible by ranks x grad_accum = {world * config.grad_accum}")
    autocast = autocast_dtype(config.precision, device)  # ValueError for fp16 on a CPU
    if len(data.labels) == 0 or data.labels.shape[:3] != data.images.shape[:3]:
        raise ValueError(f"training data mismatch: labels {data.labels.shape}, images {data.images.shape}")

    if card.label_diffusion.schedule == LabelSchedule.CLASSWISE and not card.label_diffusion.kappa:
        card = replace(card, label_diffusion=LabelDiffusionConfig(LabelSchedule.CLASSWISE, classwise_kappa(card, data)))
    label_diffusion = LabelDiffusion(card.label_diffusion, card.labels.num_classes, card.diffusion.num_timesteps)
    diffusion = Diffusion.from_config(card.diffusion)

    torch.manual_seed(config.seed)
    model = UNet(card.unet).to(device)
    ema = UNet(card.unet).to(device).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    step, seen, losses = 0, 0, []
    state_path = out_dir / STATE_NAME
    if state_path.is_file():
        state = load_training_state(state_path, map_location=device)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, seen = int(state["step"]), int(state.get("seen", 0))
    elif init_from is not None:
        from .checkpoint import check_state_dict, read_card, read_weights

        weights = read_weights(init_from)
        check_state_dict(model.state_dict(), weights, f"weights in {init_from}")
        model.load_state_dict(weights)
        ema.load_state_dict(weights)
        info = read_card(init_from).info
        step, seen = int(info.get("train_steps", 0)), int(info.get("train_images", 0))
        # The card remembers how its weights were made: the earlier stages, then this one.
        stages = list(info.get("stages", [])) or ([{"steps": step, "train": info["train"]}] if "train" in info else [])
        card = replace(card, info=dict(card.info, stages=stages + [{"init_from": Path(init_from).name, "from_step": step}]))
    net = DistributedDataParallel(model, device_ids=job.device_ids) if world > 1 else model
    scaler = torch.amp.GradScaler("cuda", enabled=autocast == torch.float16)

    micro = config.batch_size // (world * config.grad_accum)
    n, (h, w) = len(data.labels), data.labels.shape[1:3]
    t_start, seen_start, log_t = time.perf_counter(), seen, time.perf_counter()
    while step < config.steps:
        # Everything random in step `step` follows from (seed, step), so a resumed run continues identically, and
        # every rank draws it for the whole global batch and takes its slice: sample k of the batch gets the same
        # image, t, noise and label mask on any number of ranks and accumulation steps.
        rng = seeds.rng(config.seed, "step", step)  # = np.random.default_rng([seed, step])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        order = rng.integers(0, n, size=config.batch_size)
        flips = rng.random(config.batch_size) < 0.5 if config.hflip else np.zeros(config.batch_size, bool)
        # In this order (t, label-diffusion draws, dropout, noise) a single process draws exactly what the
        # per-micro-batch loop of earlier releases drew, so the bundled models' training commands still reproduce.
        t_all = torch.randint(0, diffusion.num_steps, (config.batch_size,), generator=gen)
        u_all = torch.rand((config.batch_size, h, w), generator=gen)  # label diffusion's keep draws
        drop_all = torch.rand(config.batch_size, generator=gen) < config.cond_drop
        noise_all = torch.randn((config.batch_size, 3, h, w), generator=gen)
        lr = learning_rate(config, step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        step_loss = 0.0
        for a in range(config.grad_accum):
            lo = (rank * config.grad_accum + a) * micro
            idx = order[lo:lo + micro]
            x0, y0 = _batch(data, idx, card, flips[lo:lo + micro], device)
            t = t_all[lo:lo + micro].to(device)
            y_t = label_diffusion.q_sample(y0, t, uniform=u_all[lo:lo + micro])
            drop = drop_all[lo:lo + micro].to(device)
            y_t = y_t * (~drop).float()[:, None, None, None]
            noise = noise_all[lo:lo + micro].to(device)
            x_t = diffusion.q_sample(x0, t, noise)
            with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                out = net(x_t, t.float(), y_t)
            loss = hybrid_loss(diffusion, out.float(), x0, x_t, t, noise).mean() / config.grad_accum
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the lr or use fp32")
            scaler.scale(loss).backward()
            step_loss += loss.item()
        if config.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(opt)
        scaler.update()
        step += 1
        seen += config.batch_size
        decay = min(config.ema_decay, (1 + step) / (10 + step)) if config.ema_warmup else config.ema_decay
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm.detach(), 1 - decay)
        losses.append(step_loss)
        if on_log is not None and rank == 0 and (step % config.log_every == 0 or step == config.steps):
            now = time.perf_counter()
            on_log({"step": step, "steps": config.steps, "loss": float(np.mean(losses)), "lr": lr,
                    "images_per_s": (seen - seen_start) / max(now - t_start, 1e-9), "elapsed": now - log_t})
            losses = []
        if step % config.save_every == 0 or step == config.steps:
            info = dict(card.info, train_steps=step, train_images=seen, precision=config.precision.value,
                        train=to_json_value(config))
            job.main_only(_save, out_dir, replace(card, info=info), {
                "model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step, "seen": seen})
    return out_dir


def _save(out_dir: Path, card: ModelCard, state: dict) -> None:
    """The pipeline checkpoint (EMA weights) and the resumable training state."""
    save_checkpoint(out_dir, state["ema"], card)
    save_training_state(out_dir / STATE_NAME, state)

