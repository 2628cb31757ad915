"""Named model + training presets: the embedded models, a tiny test model and the official 256 px layouts."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from .config import (LabelDiffusionConfig, LabelSchedule, LabelSpec, ModelCard, Precision, Sampler, SamplerConfig,
                     Spacing, TrainConfig, UNetConfig)
from .datasets import ade20k_labels, celebamask_hq_labels, coco_stuff_labels, embedded_labels


@dataclass(frozen=True)
class Preset:
    """A model card plus how to train it on the embedded world."""

    card: ModelCard
    train: TrainConfig = field(default_factory=TrainConfig)
    train_images: int = 20_000  # procedural training scenes made ahead and kept in memory
    threads: int = 0  # torch CPU threads (0 = torch's default)


world_labels = embedded_labels  # the embedded world's encoding (`scdm.datasets.embedded_labels`)


# Chosen for a 2-core CPU by measurement (README "The embedded default"): 32 channels at 64 and 32 px where the
# texture is made (multipliers 1,2,3,3), 96 at 16 and 8 px as before: 4.6 M parameters. Against the first release's
# 24 channels (1,2,4,4; 4.2 M) with the same recipe, after 750 steps on 64 held-out labels: fd_effnetl0 167 vs 196,
# kid_effnetl0 0.162 vs 0.240, mIoU 0.672 vs 0.520; one training step 1.26x, generate(num_samples=4) 1.2x the time.
EMBEDDED_UNET = UNetConfig(
    image_size=64, model_channels=32, channel_mult=(1, 2, 3, 3), num_res_blocks=1, attention_ds=(4, 8),
    num_head_channels=32, label_channels=12, spade_hidden=24, groupnorm_groups=8,
)
# The reference's x0 extrapolation (0.8) hurts these small models: mIoU of samples 0.43 with it, 0.64 without
# (32 held-out labels, 2500 training steps; real images 0.66). Dynamic thresholding 0.95 stays.
# Deterministic DDIM drifted on the first release's models (mIoU 0.60); on these it reaches the real images' mIoU but
# stays ~0.04 below DDIM with eta 1 (README "Few-step table").
# Timesteps: evenly spread ones (`sections`) end with a jump from t = 71 to 0 whose x0 estimate is the posterior mean,
# smoother than the real renders (hf_energy 4.8 vs 6.8); `quad` spacing ends 5 -> 0 and, with guidance 1.75 and 20
# steps, brings texture and distances close to the real images' (64 held-out labels, README "Few-step table").
# Sampling autocast follows the bf16 training where the CPU has native bf16.
EMBEDDED_SAMPLER = SamplerConfig(sampler=Sampler.DDIM, steps=20, spacing=Spacing.QUAD, guidance=1.75, extrapolation=0.0,
                                 eta=1.0, precision=Precision.AUTO)
# lr 2e-4 after 200 warm-up steps, cosine decay to 2e-5 over the second half (continuing the first release's
# constant-lr weights at 4 500 steps for 400 more with or without decay changed nothing: they had stopped improving).
EMBEDDED_TRAIN = TrainConfig(
    steps=10_000, batch_size=16, lr=2e-4, warmup_steps=200, decay_from=5_000, lr_min=2e-5, ema_decay=0.999,
    cond_drop=0.2, precision=Precision.BF16, seed=0, save_every=250, log_every=25,
)


def _embedded(schedule: LabelSchedule, name: str) -> Preset:
    card = ModelCard(unet=EMBEDDED_UNET, labels=world_labels(), label_diffusion=LabelDiffusionConfig(schedule),
                     sampler=EMBEDDED_SAMPLER, name=name, dataset="embedded")
    return Preset(card, EMBEDDED_TRAIN, threads=1)


def _official(label_channels: int, num_classes: int, spec: LabelSpec, name: str) -> ModelCard:
    unet = UNetConfig(image_size=256, model_channels=256, channel_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                      attention_ds=(8, 16, 32), num_head_channels=64, label_channels=label_channels,
                      spade_hidden=128, groupnorm_groups=32)
    return ModelCard(unet=unet, labels=spec, label_diffusion=LabelDiffusionConfig(LabelSchedule.CLASSWISE),
                     name=name, dataset=name)


OFFICIAL_CARDS = {
    "ade20k": lambda: _official(151, 151, ade20k_labels(), "ade20k"),
    "celebamask_hq": lambda: _official(20, 19, celebamask_hq_labels(), "celebamask_hq"),
    "coco_stuff": lambda: _official(184, 183, coco_stuff_labels(), "coco_stuff"),
}

TINY_UNET = UNetConfig(image_size=32, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_ds=(2,),
                       num_head_channels=16, label_channels=12, spade_hidden=8, groupnorm_groups=4)

PRESETS = {
    "embedded-scdm": lambda: _embedded(LabelSchedule.CLASSWISE, "embedded-scdm"),
    "embedded-sdm": lambda: _embedded(LabelSchedule.NONE, "embedded-sdm"),
    # The paper's ablation: Label Diffusion with one schedule for every class (gamma_i = 1 - (i + 1) / N); same recipe.
    "embedded-scdm-uniform": lambda: _embedded(LabelSchedule.UNIFORM, "embedded-scdm-uniform"),
    "tiny-scdm": lambda: Preset(
        replace(_embedded(LabelSchedule.CLASSWISE, "tiny-scdm").card, unet=TINY_UNET),
        replace(EMBEDDED_TRAIN, steps=20, batch_size=4, save_every=10, log_every=5, precision=Precision.FP32),
        train_images=64),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {sorted(PRESETS)}")
    return PRESETS[name]()


def check_card(card: ModelCard, preset: str) -> None:
    """Raise ValueError unless `card` is preset `preset`'s model: same name, network, diffusion, labels, schedule."""
    want = get_preset(preset).card
    checks = {"name": (card.name, want.name), "unet": (card.unet, want.unet),
              "diffusion": (card.diffusion, want.diffusion), "labels": (card.labels, want.labels),
              "label schedule": (card.label_diffusion.schedule, want.label_diffusion.schedule)}
    wrong = [k for k, (got, expected) in checks.items() if got != expected]
    if wrong:
        k = wrong[0]
        got, expected = checks[k]
        raise ValueError(f"the checkpoint is not a {preset} model: its {', '.join(wrong)} differ from the preset's "
                         f"({k}: {got!r:.120} vs {expected!r:.120}); train it with --preset {preset}, or install the "
                         f"preset it was trained as")
