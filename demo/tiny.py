"""Random-weight tiny SCDM/SDM checkpoints: the demo's stand-ins for tests and UI work without trained weights."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from scdm.checkpoint import save_checkpoint
from scdm.config import LabelDiffusionConfig, LabelSchedule, ModelCard
from scdm.presets import EMBEDDED_SAMPLER, TINY_UNET, world_labels
from scdm.unet import UNet

KAPPA = 2.0  # any kappa > 1 gives the curved class-wise schedule; trained models estimate it per class


def tiny_card(schedule: LabelSchedule, size: int = 64) -> ModelCard:
    """A tiny U-Net at `size` px over the embedded world's 12 classes (3 levels: attention at 16 px, not 32),
    sampled like the embedded models (their card sampler, `EMBEDDED_SAMPLER`)."""
    labels = world_labels()
    kappa = (KAPPA,) * labels.num_classes if schedule == LabelSchedule.CLASSWISE else ()
    name = "tiny-scdm" if schedule != LabelSchedule.NONE else "tiny-sdm"
    return ModelCard(unet=replace(TINY_UNET, image_size=size, channel_mult=(1, 2, 2), attention_ds=(4,)), labels=labels,
                     label_diffusion=LabelDiffusionConfig(schedule, kappa=kappa), sampler=EMBEDDED_SAMPLER, name=name,
                     dataset="embedded")


def make_tiny_checkpoints(out_dir: str | Path, size: int = 64, seed: int = 0) -> tuple[Path, Path]:
    """Write `<out_dir>/tiny-scdm` and `<out_dir>/tiny-sdm` (same random weights) and return both paths."""
    out = Path(out_dir)
    torch.manual_seed(seed)
    model = UNet(tiny_card(LabelSchedule.CLASSWISE, size).unet)
    paths = []
    for schedule in (LabelSchedule.CLASSWISE, LabelSchedule.NONE):
        card = tiny_card(schedule, size)
        paths.append(save_checkpoint(out / card.name, model.state_dict(), card))
    return paths[0], paths[1]
