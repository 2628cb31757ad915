"""Checkpoint directories: `config.json` (a ModelCard) + `model.safetensors` (EMA weights), and resumable training
states (torch.save, read with weights_only=True). Loading runs no code.

Files are written to a temporary name in the same directory and renamed, so a killed writer never leaves a
half-written checkpoint behind.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import ModelCard, card_from_json, card_to_json
from .files import atomic_write, atomic_write_bytes

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    atomic_write(path, lambda tmp: save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp,
                                             metadata=metadata))


def save_training_state(path: str | Path, state: dict) -> None:
    """A resumable training state (tensors, numbers, optimizer state dicts) through torch.save, written atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A state written by `save_training_state`, loaded with weights_only=True (tensors and plain data, no code)."""
    return torch.load(path, map_location=map_location, weights_only=True)


def save_checkpoint(out_dir: str | Path, state_dict: dict[str, torch.Tensor], card: ModelCard) -> Path:
    """Write a loadable checkpoint directory (weights first, then the config that makes it complete)."""
    out_dir = Path(out_dir)
    atomic_save_tensors(out_dir / WEIGHTS_NAME, state_dict, metadata={"format": "pt"})
    atomic_write_bytes(out_dir / CONFIG_NAME, card_to_json(card).encode())
    return out_dir


def read_card(ckpt_dir: str | Path) -> ModelCard:
    path = Path(ckpt_dir) / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{ckpt_dir} is not a checkpoint directory: {CONFIG_NAME} is missing "
                         f"(official .pt files need `scdm.convert_official` first)")
    try:
        return card_from_json(path.read_text())
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path} is not a valid SCDM config: {e}") from None


def read_weights(ckpt_dir: str | Path, how_to_fix: str = "") -> dict[str, torch.Tensor]:
    path = Path(ckpt_dir) / WEIGHTS_NAME
    hint = f" {how_to_fix}" if how_to_fix else ""
    if not path.is_file():
        raise ValueError(f"weights file {path} is missing.{hint}")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise ValueError(f"weights file {path} is unreadable or truncated ({e}).{hint}") from None
    for k, v in tensors.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise ValueError(f"weights file {path}: tensor {k} contains NaN or inf.{hint}")
    return tensors


def check_state_dict(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor], source: str, hint: str = "") -> None:
    """Raise a ValueError naming missing, unexpected and mis-shaped tensors."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = sorted(k for k in set(expected) & set(got) if tuple(expected[k].shape) != tuple(got[k].shape))
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append("mis-shaped: " + ", ".join(
                f"{k} {tuple(got[k].shape)} vs expected {tuple(expected[k].shape)}" for k in shapes[:3]))
        raise ValueError(f"{source} does not match the model: " + "; ".join(parts) + (f". {hint}" if hint else ""))
