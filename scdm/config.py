"""Typed, frozen configuration objects: one per concern, every field with a default and a reason.

A checkpoint directory stores these as JSON (`config.json`) next to its weights, so loading needs no flags.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from .serialize import from_json_value, split_format, to_json_value


class NoiseSchedule(str, enum.Enum):
    """Beta schedule of the image diffusion (docs/method.md §3)."""

    LINEAR = "linear"
    COSINE = "cosine"


class LabelSchedule(str, enum.Enum):
    """Keep-probability schedule gamma_t(c) of Label Diffusion (docs/method.md §4)."""

    NONE = "none"  # SDM: the condition is never diffused
    UNIFORM = "uniform"  # gamma_t = 1 - t/T for every class (ablation)
    CLASSWISE = "classwise"  # SCDM default: 1 - gamma_t(c) = min(tau, (kappa_c^tau - 1) / (kappa_c - 1))


class Sampler(str, enum.Enum):
    """Reverse-process solvers (docs/method.md §5)."""

    ANCESTRAL = "ancestral"  # reference-compatible stochastic steps with the learned variance
    DDIM = "ddim"  # DDIM with eta
    DPMPP_2M = "dpmpp_2m"  # DPM-Solver++(2M), data prediction, multistep


class Spacing(str, enum.Enum):
    """Which original timesteps a respaced sampler visits (guided-diffusion's `space_timesteps` rules)."""

    # `ddimN`: the smallest integer stride s with len(range(0, T, s)) == N; the reference's 25-step mode
    # (`--timestep_respacing ddim25`) visits t = 0, 40, ..., 960.
    DDIM = "ddim"
    # plain `N`: N steps evenly spread over [0, T-1], both ends included, rounded: 0, 42, 83, ..., 999 for N = 25.
    SECTIONS = "sections"
    # `quad`: t_i = round((T-1) (i / (N-1))^2), each at least one above the last: small steps near the data, where
    # fine texture is decided (the DDIM paper's quadratic spacing, ending at T-1 like `sections`).
    QUAD = "quad"


class Precision(str, enum.Enum):
    """Autocast dtype of the U-Net (`scdm.precision.autocast_dtype` resolves it on a device)."""

    FP32 = "fp32"
    BF16 = "bf16"  # fast on GPUs and on CPUs with AVX512-BF16 / AMX
    FP16 = "fp16"  # GPU only
    AUTO = "auto"  # bf16 where the device computes it natively, else fp32
    AUTO_FP16 = "auto-fp16"  # fp16 on GPUs (the reference's `--use_fp16 True`), fp32 elsewhere


@dataclass(frozen=True)
class UNetConfig:
    """The SDM U-Net (docs/method.md §2); the official 256 px presets and tiny CPU models share this code."""

    image_size: int = 64  # training resolution; the network itself is fully convolutional
    in_channels: int = 3  # RGB x_t
    model_channels: int = 64  # base width; also the timestep-embedding size
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)  # width multiplier per level; one level per entry
    num_res_blocks: int = 2  # ResBlocks per level in the encoder (decoder has one more)
    attention_ds: tuple[int, ...] = (4, 8)  # downsampling factors with self-attention (64 px: 16 and 8 px)
    num_head_channels: int = 64  # channels per attention head (official: 64)
    label_channels: int = 12  # one-hot classes plus the edge channel when `LabelSpec.use_edges`
    spade_hidden: int = 128  # hidden width of SPADE's shared conv (official: 128)
    groupnorm_groups: int = 32  # official: 32; tiny test configs need fewer
    learn_sigma: bool = True  # 6 output channels: eps and the variance interpolation v
    use_scale_shift_norm: bool = True  # FiLM timestep conditioning (official: True)
    resblock_updown: bool = True  # down/up-sampling ResBlocks between levels (official: True)
    dropout: float = 0.0  # official ADE20K training uses 0.1; sampling ignores it

    @property
    def out_channels(self) -> int:
        return self.in_channels * (2 if self.learn_sigma else 1)


@dataclass(frozen=True)
class DiffusionConfig:
    """Gaussian image diffusion (docs/method.md §3)."""

    num_timesteps: int = 1000  # T
    noise_schedule: NoiseSchedule = NoiseSchedule.LINEAR  # SDM/SCDM use linear 1e-4 .. 0.02


@dataclass(frozen=True)
class LabelSpec:
    """How raw dataset ids become label channels (docs/method.md §7 encodings)."""

    num_classes: int = 12  # one-hot channels, edge channel excluded
    raw_ids: tuple[int, ...] | None = None  # raw_ids[i] is the raw id of channel i; None means identity
    unlabeled_id: int | None = None  # the dataset's raw "unlabeled" id (ADE20K 0, COCO-Stuff 255)
    unlabeled_to_null: bool = False  # send unlabeled pixels to the all-zero [MASK] vector instead of a channel
    use_edges: bool = False  # append the 4-neighbour instance-boundary channel (CelebAMask-HQ, COCO-Stuff)
    class_names: tuple[str, ...] = ()  # for palettes, UIs and reports; may be empty
    palette: tuple[tuple[int, int, int], ...] = ()  # colour of channel i; may be empty

    @property
    def channels(self) -> int:
        return self.num_classes + int(self.use_edges)


@dataclass(frozen=True)
class LabelDiffusionConfig:
    """Label Diffusion q(y_t | y_0) of SCDM (docs/method.md §4)."""

    schedule: LabelSchedule = LabelSchedule.CLASSWISE  # NONE turns the model into SDM
    kappa: tuple[float, ...] = ()  # per-class kappa_c for CLASSWISE; from the training set or a published .npy


@dataclass(frozen=True)
class SamplerConfig:
    """Default generation settings; the defaults are the reference 25-step mode (`docs/method.md`, Generation).

    The reference's 1000-step mode is `steps=1000`: sampling without respacing uses neither extrapolation nor
    dynamic thresholding unless they are asked for explicitly (its published command passes neither).
    """

    sampler: Sampler = Sampler.ANCESTRAL  # reference-compatible
    steps: int = 25  # respaced evaluations
    spacing: Spacing = Spacing.DDIM  # the reference's `ddim25`: t = 0, 40, ..., 960
    guidance: float = 1.5  # classifier-free guidance scale s; s <= 1 gives the conditional output (reference rule)
    extrapolation: float = 0.8  # x0 <- x0 + w (x0 - x0_prev); 0 disables
    dynamic_threshold: float = 0.95  # quantile of |x0|; 0 means plain clipping to [-1, 1]
    eta: float = 0.0  # DDIM stochasticity
    precision: Precision = Precision.AUTO_FP16  # the published sampling commands run the network in fp16


@dataclass(frozen=True)
class ModelCard:
    """Everything a checkpoint directory needs to rebuild its pipeline."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    labels: LabelSpec = field(default_factory=LabelSpec)
    label_diffusion: LabelDiffusionConfig = field(default_factory=LabelDiffusionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    name: str = ""  # human-readable name shown by the demo and reports
    dataset: str = ""  # dataset the weights were trained on ("embedded", "ade20k", ...)
    info: dict[str, Any] = field(default_factory=dict)  # free-form provenance (steps, loss, source file)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (docs/method.md §3: AdamW, lr 1e-4, EMA 0.9999, batch 40, condition dropout 0.2)."""

    steps: int = 10_000  # optimizer steps in total (a resumed run continues up to this)
    batch_size: int = 16  # global batch per optimizer step, split over ranks and accumulation steps
    grad_accum: int = 1  # micro-batches per optimizer step on each rank
    lr: float = 1e-4  # AdamW learning rate (2e-5 for fine-tuning)
    weight_decay: float = 0.0  # the reference uses none
    warmup_steps: int = 0  # linear lr warm-up
    decay_from: int | None = None  # step where a cosine decay of the lr to `lr_min` at `steps` begins; None: constant
    lr_min: float = 0.0  # the lr reached at `steps` when decaying
    ema_decay: float = 0.9999  # EMA of the weights; small runs want less (0.999)
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n) / (10 + n)) so short runs' EMA is not stale
    cond_drop: float = 0.2  # fraction of samples whose whole condition is zeroed (classifier-free guidance)
    hflip: bool = True  # random horizontal flips of image and label
    precision: Precision = Precision.FP32
    seed: int = 0  # batches, timesteps, noise and label diffusion all follow from it
    save_every: int = 500  # steps between checkpoints
    log_every: int = 50  # steps between progress reports
    grad_clip: float = 0.0  # max grad norm; 0 disables (the reference does not clip)


# ---------------------------------------------------------------------------------------------- config.json

# "format" of a card's config.json; bump it when a field changes meaning. Cards written before it was recorded
# have no key and are format 1; a newer format is refused (scdm.serialize.split_format).
CARD_FORMAT = 1


def card_to_json(card: ModelCard) -> str:
    """config.json text: the format version, then the card's fields."""
    return json.dumps({"format": CARD_FORMAT, **to_json_value(card)}, indent=1)


def card_from_json(text: str) -> ModelCard:
    """A card from config.json text, type-checked; errors name the field (`card.sampler.steps: expected int, ...`)."""
    _, data = split_format(json.loads(text), current=CARD_FORMAT, where="card")
    return from_json_value(ModelCard, data, "card")
