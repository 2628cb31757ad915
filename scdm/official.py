"""Convert official SDM / SCDM checkpoints (`model.pt` state dicts) into project checkpoint directories.

The official module names equal ours, so conversion is: read the tensors (never unpickling code), work out the
architecture (preset, the official CLI hyper-parameters, or the tensors themselves), check every name and
shape, and write `config.json` + `model.safetensors`.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .checkpoint import check_state_dict, save_checkpoint
from .config import LabelDiffusionConfig, LabelSchedule, LabelSpec, ModelCard, NoiseSchedule
from .label_diffusion import load_kappa
from .labels import unlabeled_channel
from .presets import OFFICIAL_CARDS
from .unet import UNet

OFFICIAL_HPARAMS = {
    "image_size", "num_classes", "no_instance", "num_channels", "num_res_blocks", "channel_mult",
    "attention_resolutions", "num_head_channels", "learn_sigma", "use_scale_shift_norm", "resblock_updown",
    "diffusion_steps", "noise_schedule",
}


def _ints(value) -> tuple[int, ...]:
    if isinstance(value, str):
        return tuple(int(v) for v in value.split(",") if v.strip())
    return tuple(int(v) for v in value)


def read_official_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of an official `.pt` (a plain state dict, possibly wrapped in {'model': ...} or 'module.')."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"official checkpoint {path} does not exist") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for corrupt files
        raise ValueError(f"cannot read official checkpoint {path} as a tensor state dict: {e}") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} is not a state dict of tensors")
    return {k.removeprefix("module."): v.float() for k, v in obj.items()}


def infer_unet(state: dict[str, torch.Tensor]):
    """UNetConfig read off the tensors: widths, levels, res blocks, attention, label channels."""
    from .config import UNetConfig

    try:
        ch = state["input_blocks.0.0.weight"].shape[0]
        shared = next(v for k, v in state.items() if k.endswith("mlp_shared.0.weight"))
        out_w = state["out.2.weight"]
    except (KeyError, StopIteration):
        raise ValueError("the tensors do not look like an SDM/SCDM U-Net (input_blocks.0.0, mlp_shared, out.2 missing)") from None
    n_out = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"output_blocks\.(\d+)\.", k)))
    ups = sorted({int(m.group(1)) for k in state if (m := re.match(r"output_blocks\.(\d+)\.[12]\.in_norm\.", k))})
    nrb = ups[0] if ups else n_out - 1
    levels = n_out // (nrb + 1)
    mult, attn = [], []
    for lvl in range(levels):  # output level lvl runs at ds = 2 ** (levels - 1 - lvl)
        first = lvl * (nrb + 1)
        mult.append(state[f"output_blocks.{first}.0.out_layers.2.weight"].shape[0] // ch)
        if f"output_blocks.{first}.1.qkv.weight" in state:
            attn.append(2 ** (levels - 1 - lvl))
    # Head count is invisible in the tensors: the official 64 channels per head where the widths allow it.
    widths = [v.shape[0] // 3 for k, v in state.items() if k.endswith("qkv.weight")] or [64]
    heads_ch = 64 if all(w % 64 == 0 for w in widths) else min(widths)
    return UNetConfig(model_channels=ch, channel_mult=tuple(reversed(mult)), num_res_blocks=nrb,
                      attention_ds=tuple(sorted(attn)), num_head_channels=heads_ch,
                      label_channels=shared.shape[1], spade_hidden=shared.shape[0],
                      learn_sigma=out_w.shape[0] == 6, groupnorm_groups=32)


def parse_bool(name: str, value) -> bool:
    """An official boolean flag given as a bool or as the CLI writes it ("True", "false", "1", ...)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"official hyper-parameter {name} must be True or False, got {value!r}")


def _card_from_hparams(base: ModelCard, hp: dict) -> ModelCard:
    unknown = sorted(set(hp) - OFFICIAL_HPARAMS)
    if unknown:
        raise ValueError(f"unknown official hyper-parameters {unknown}; known: {sorted(OFFICIAL_HPARAMS)}")
    u, d, labels = base.unet, base.diffusion, base.labels
    size = int(hp.get("image_size", u.image_size))
    if "num_classes" in hp or "no_instance" in hp:
        k = int(hp.get("num_classes", labels.num_classes))
        edges = not parse_bool("no_instance", hp.get("no_instance", not labels.use_edges))
        if k != labels.num_classes:
            labels = LabelSpec(num_classes=k, use_edges=edges)
        labels = replace(labels, use_edges=edges)
    kw = dict(image_size=size, label_channels=labels.channels)
    if "num_channels" in hp:
        kw["model_channels"] = int(hp["num_channels"])
    if "num_res_blocks" in hp:
        kw["num_res_blocks"] = int(hp["num_res_blocks"])
    if "channel_mult" in hp and hp["channel_mult"] not in ("", None):
        kw["channel_mult"] = _ints(hp["channel_mult"])
    if "attention_resolutions" in hp:
        kw["attention_ds"] = tuple(sorted(size // r for r in _ints(hp["attention_resolutions"])))
    for name in ("learn_sigma", "use_scale_shift_norm", "resblock_updown"):
        if name in hp:
            kw[name] = parse_bool(name, hp[name])
    if "num_head_channels" in hp:
        kw["num_head_channels"] = int(hp["num_head_channels"])
    if "diffusion_steps" in hp:
        d = replace(d, num_timesteps=int(hp["diffusion_steps"]))
    if "noise_schedule" in hp:
        d = replace(d, noise_schedule=NoiseSchedule(hp["noise_schedule"]))
    return replace(base, unet=replace(u, **kw), diffusion=d, labels=labels)


def _closest_preset(state: dict[str, torch.Tensor]) -> str:
    shared = next((v for k, v in state.items() if k.endswith("mlp_shared.0.weight")), None)
    if shared is None:
        return "none"
    by_channels = {card().unet.label_channels: name for name, card in OFFICIAL_CARDS.items()}
    return by_channels.get(shared.shape[1], f"none of {sorted(OFFICIAL_CARDS)} ({shared.shape[1]} label channels)")


def convert_official(checkpoint: str | Path, out_dir: str | Path, *, preset: str | None = None,
                     kappa=None, **official_hparams) -> Path:
    """Official `.pt` -> checkpoint directory; `kappa` (array or `.npy`) enables class-wise Label Diffusion."""
    state = read_official_state(checkpoint)
    if preset is not None:
        if preset not in OFFICIAL_CARDS:
            raise ValueError(f"unknown preset {preset!r}; use one of {sorted(OFFICIAL_CARDS)}")
        card = OFFICIAL_CARDS[preset]()
    else:
        inferred = infer_unet(state)
        card = ModelCard(unet=inferred, labels=LabelSpec(num_classes=inferred.label_channels), name=Path(checkpoint).stem)
    card = _card_from_hparams(card, official_hparams)
    with torch.device("meta"):
        model = UNet(card.unet)
    check_state_dict(model.state_dict(), state, f"official checkpoint {checkpoint}",
                     f"It looks like preset {_closest_preset(state)!r}; pass preset=... or the official "
                     f"hyper-parameters (num_channels, channel_mult, attention_resolutions, ...) it was trained with")
    k = card.labels.num_classes
    unl = unlabeled_channel(card.labels)
    if kappa is None:
        ld = LabelDiffusionConfig(LabelSchedule.NONE)
    elif isinstance(kappa, (str, Path)):
        ld = LabelDiffusionConfig(LabelSchedule.CLASSWISE, load_kappa(kappa, k, unl))
    else:
        arr = np.asarray(kappa, dtype=np.float64).reshape(-1)
        if arr.shape[0] != k or not np.isfinite(arr).all():
            raise ValueError(f"kappa must hold {k} finite values, got {arr.shape[0]}")
        if unl is not None:
            arr[unl] = 0.5
        ld = LabelDiffusionConfig(LabelSchedule.CLASSWISE, tuple(float(v) for v in arr))
    card = replace(card, label_diffusion=ld, info={"source": Path(checkpoint).name, "converted_from": "official"})
    return save_checkpoint(out_dir, state, card)
