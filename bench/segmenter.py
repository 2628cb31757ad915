"""Segmenters that score generated images (label map -> image -> predicted label map), and mIoU maths.

A segmenter maps uint8 (N,H,W,3) images to (N,H,W) raw dataset ids. Sources:
- "embedded": the bundled smp U-Net trained on the embedded world (`bench/weights/embedded-segmenter`);
- a directory with `config.json` (an `SegmenterConfig`) + `model.safetensors`: any smp architecture/encoder;
- a directory written by smp's `model.save_pretrained` or an smp Hub id such as
  "smp-hub/segformer-b0-512x512-ade-160k" (online only), loaded with `smp.from_pretrained`.

mIoU follows mmseg: per-class IoU = TP / (TP + FP + FN) over a confusion matrix accumulated over the whole
set; classes whose union is empty (absent from both prediction and target) are NaN and left out of the mean.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scdm.checkpoint import atomic_save_tensors, atomic_write_bytes, check_state_dict, read_weights
from scdm.serialize import from_json_value, split_format, to_json_value
from scdm.world import CLASS_IDS, CLASS_NAMES

EMBEDDED_DIR = Path(__file__).resolve().parent / "weights" / "embedded-segmenter"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "scdm-segmenter"  # marks our config.json (smp's own configs carry "_model_class" instead)
FORMAT_VERSION = 1  # config.json's "format_version"; files without it are version 1, newer ones are refused
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ADE20K: output index k <-> raw id k + 1 (raw 0 = unlabeled is never predicted).
ADE20K_IDS = tuple(range(1, 151))
# Cityscapes: train id k -> label id (the 19 evaluated classes, cityscapesScripts labels.py).
CITYSCAPES_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)


# ---------------------------------------------------------------------------------------------- mIoU

def confusion_matrix(pred: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, num_classes: int,
                     ignore_index: int | None = 255, *, per_image: bool = False) -> np.ndarray:
    """(K, K) int64 counts, rows = target class, columns = predicted class; target == ignore_index is skipped.

    Both inputs hold class indices 0..K-1 (map raw ids with `ids_to_indices`). With `per_image`, both are
    (N, ...) and the result is (N, K, K), one matrix per image, summing to the whole set's. A prediction outside
    0..K-1 on a scored pixel is an error: a segmenter always predicts one of its classes.
    """
    p = np.asarray(pred.cpu() if torch.is_tensor(pred) else pred).astype(np.int64)
    t = np.asarray(target.cpu() if torch.is_tensor(target) else target).astype(np.int64)
    if p.size != t.size or (per_image and p.shape != t.shape):
        raise ValueError(f"pred and target must have the same number of pixels, got {p.size} and {t.size}"
                         + (f" (shapes {p.shape} and {t.shape})" if per_image else ""))
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    n = t.shape[0] if per_image else 1
    p, t = p.reshape(n, t.size // max(n, 1)), t.reshape(n, t.size // max(n, 1))  # (N, pixels)
    keep = t != ignore_index if ignore_index is not None else np.ones_like(t, bool)
    image = np.broadcast_to(np.arange(n)[:, None], t.shape)[keep]
    p, t = p[keep], t[keep]
    if t.size and (t.min() < 0 or t.max() >= num_classes):
        raise ValueError(f"target values must be in 0..{num_classes - 1} or ignore_index={ignore_index}, "
                         f"got range {t.min()}..{t.max()}")
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise ValueError(f"predictions must be in 0..{num_classes - 1}, got range {p.min()}..{p.max()}")
    k2 = num_classes * num_classes
    counts = np.bincount((image * k2 + t * num_classes + p).ravel(), minlength=n * k2)
    counts = counts.reshape(n, num_classes, num_classes)  # (N, K, K)
    return counts if per_image else counts[0]


def class_iou(cm: np.ndarray) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN) of (..., K, K) confusion matrices; an empty union gives NaN."""
    cm = np.asarray(cm, np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    union = cm.sum(-2) + cm.sum(-1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def miou_batch(cm: np.ndarray) -> np.ndarray:
    """mIoU of each (..., K, K) confusion matrix; classes with an empty union are skipped, none present gives NaN."""
    iou = class_iou(cm)
    present = np.isfinite(iou).sum(-1)
    with np.errstate(invalid="ignore"):
        return np.where(present > 0, np.nansum(iou, -1) / np.maximum(present, 1), np.nan)


def miou_from_confusion(cm: np.ndarray) -> tuple[float, np.ndarray]:
    """(mIoU, per-class IoU) from a (K, K) confusion matrix; classes with an empty union are NaN and skipped."""
    cm = np.asarray(cm, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {cm.shape}")
    return float(miou_batch(cm)), class_iou(cm)


def ids_to_indices(ids: np.ndarray | torch.Tensor, classes: Sequence[int], fill: int = 255) -> np.ndarray:
    """Raw dataset ids -> class indices 0..K-1 (position in `classes`); other ids (e.g. unlabeled) -> fill."""
    ids = np.asarray(ids.cpu() if torch.is_tensor(ids) else ids)
    if ids.size and (ids.min() < 0 or ids.max() > 65535):
        raise ValueError(f"raw ids must be in 0..65535, got range {ids.min()}..{ids.max()}")
    lut = np.full(max(max(classes), int(ids.max(initial=0))) + 1, fill, np.int64)
    lut[np.asarray(classes, np.int64)] = np.arange(len(classes))
    return lut[ids.astype(np.int64)]


# ---------------------------------------------------------------------------------------------- config

@dataclass(frozen=True)
class SegmenterConfig:
    """Everything needed to rebuild and run a segmenter directory (stored as its config.json)."""

    architecture: str = "Unet"  # smp architecture (smp.create_model `arch`)
    encoder: str = "tu-tf_efficientnet_lite0"  # smp encoder; timm's TF port matches the ImageNet weights exactly
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # other smp constructor arguments (decoder channels, depth)
    classes: tuple[int, ...] = CLASS_IDS  # raw dataset id predicted by each output channel
    class_names: tuple[str, ...] = CLASS_NAMES  # human-readable names, same order as `classes`
    input_size: int = 64  # resolution of the images the segmenter was trained on
    model_size: int | None = None  # square network input size images are resized to (None: as given; 128 was too slow)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)  # normalisation of 0..1 RGB (TF Lite weights: 127/128)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    weights_dtype: str = "float16"  # storage dtype of model.safetensors (computation is float32)
    metrics: dict[str, Any] = field(default_factory=dict)  # held-out evaluation written by the trainer
    training: dict[str, Any] = field(default_factory=dict)  # how the weights were trained (steps, time, augmentation)

    def to_json(self) -> str:
        """config.json text: the format tag and version, then the fields."""
        doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **to_json_value(self)}
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SegmenterConfig:
        """Parse config.json text, type-checked (scdm.serialize); unknown keys are an error."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} config (missing \"format\": \"{FORMAT}\")")
        _, data = split_format({k: v for k, v in data.items() if k != "format"}, current=FORMAT_VERSION,
                               key="format_version", where="segmenter")
        config = from_json_value(cls, data, "segmenter")
        if len(config.class_names) not in (0, len(config.classes)):
            raise ValueError(f"class_names has {len(config.class_names)} entries but classes has {len(config.classes)}")
        return config


def build_model(config: SegmenterConfig) -> torch.nn.Module:
    """The randomly initialised smp network a config describes (no weights are downloaded)."""
    import segmentation_models_pytorch as smp

    return smp.create_model(config.architecture, encoder_name=config.encoder, encoder_weights=None,
                            classes=len(config.classes), **config.arch_kwargs)


def save_segmenter(directory: str | Path, model: torch.nn.Module, config: SegmenterConfig) -> Path:
    """Write model.safetensors (floats in config.weights_dtype) then config.json, each atomically."""
    dtype = getattr(torch, config.weights_dtype)
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    directory = Path(directory)
    atomic_save_tensors(directory / WEIGHTS_NAME, state, metadata={"format": "pt"})
    atomic_write_bytes(directory / CONFIG_NAME, config.to_json().encode())
    return directory


# ---------------------------------------------------------------------------------------------- segmenter

def network_logits(model: torch.nn.Module, x: torch.Tensor, *, mean: torch.Tensor, std: torch.Tensor,
                   model_size: int | None) -> torch.Tensor:
    """RGB in 0..1 (B,3,H,W) -> logits (B,K,H,W): normalise, resize to model_size, pad to /32, run, resize back.

    Shared by training and inference so both see identical preprocessing; differentiable.
    """
    h, w = x.shape[-2:]
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    if model_size is not None and (h, w) != (model_size, model_size):
        x = F.interpolate(x, size=(model_size, model_size), mode="bilinear", align_corners=False,
                          antialias=model_size < max(h, w))
    pad_w, pad_h = -x.shape[-1] % 32, -x.shape[-2] % 32  # smp encoders need sides divisible by 32
    if pad_w or pad_h:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    out = model(x.contiguous(memory_format=torch.channels_last))  # (B, K, H', W'); NHWC: ~30% faster on CPU
    if pad_w or pad_h:
        out = out[..., :out.shape[-2] - pad_h, :out.shape[-1] - pad_w]
    if out.shape[-2:] != (h, w):
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
    return out


class Segmenter:
    """A segmentation network that maps uint8 RGB images to raw dataset ids."""

    def __init__(self, model: torch.nn.Module, classes: Sequence[int], *, name: str,
                 model_size: int | None = None, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, class_names: Sequence[str] = (),
                 device: str | torch.device | None = None) -> None:
        self.device = torch.device(device or "cpu")
        self.model = model.to(self.device, memory_format=torch.channels_last).eval().requires_grad_(False)
        self.classes = tuple(int(c) for c in classes)
        self.class_names = tuple(class_names)
        self.name = name
        self.model_size = model_size
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device)
        self._std = torch.tensor(std, dtype=torch.float32, device=self.device)
        self._ids = torch.tensor(self.classes, dtype=torch.int64, device=self.device)

    def __repr__(self) -> str:
        return f"Segmenter(name={self.name!r}, classes={len(self.classes)}, model_size={self.model_size})"

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (B,3,H,W) -> class logits (B,K,H,W) at the input resolution."""
        x = x.to(self.device, torch.float32) / 255.0
        return network_logits(self.model, x, mean=self._mean, std=self._std, model_size=self.model_size)

    def predict(self, images: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray | torch.Tensor:
        """uint8 (N,H,W,3) images -> (N,H,W) int64 raw dataset ids (numpy in, numpy out; torch in, torch out)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        x = torch.as_tensor(images)
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {x.dtype} {tuple(x.shape)}")
        out = torch.empty(x.shape[:3], dtype=torch.int64)
        for i in range(0, x.shape[0], batch_size):
            batch = x[i:i + batch_size].permute(0, 3, 1, 2)  # (B, 3, H, W)
            out[i:i + batch_size] = self._ids[self.logits(batch).argmax(1)].cpu()
        return out if torch.is_tensor(images) else out.numpy()


# ---------------------------------------------------------------------------------------------- loading

def _hub_defaults(source: str) -> tuple[tuple[int, ...] | None, int | None]:
    """(raw ids of the outputs, network input size) of smp-hub SegFormers, from the dataset in their name."""
    name = source.rstrip("/").split("/")[-1]
    if "-ade-" in name:
        return ADE20K_IDS, 512  # trained on 512x512 ADE20K crops
    if "-city-" in name:
        return CITYSCAPES_IDS, 1024  # trained on 1024x1024 Cityscapes crops
    return None, None


def _hf_offline() -> bool:
    """Whether huggingface_hub was told to stay offline (HF_HUB_OFFLINE=1)."""
    try:
        from huggingface_hub import constants
    except ImportError:
        return True
    return bool(constants.HF_HUB_OFFLINE)


def _load_smp_pretrained(source: str, classes: Sequence[int] | None, model_size: int | None,
                         device: str | torch.device | None) -> Segmenter:
    """Local `save_pretrained` directory or smp Hub id -> Segmenter (ImageNet normalisation)."""
    import segmentation_models_pytorch as smp

    known_classes, known_size = _hub_defaults(source)
    classes = tuple(classes) if classes is not None else known_classes
    model_size = model_size if model_size is not None else known_size
    if classes is None:
        raise ValueError(f"cannot tell which dataset ids the outputs of {source!r} are: pass classes=(raw id of "
                         f"output 0, raw id of output 1, ...), e.g. classes=range(1, 151) for ADE20K")
    local = Path(source).is_dir()
    if not local and _hf_offline():
        raise RuntimeError(f"smp checkpoint {source!r} lives on the Hugging Face Hub but HF_HUB_OFFLINE is set; "
                           f"use source='embedded' or a local directory")
    try:
        model = smp.from_pretrained(source)  # offline without HF_HUB_OFFLINE: ~30 s of retries, then OSError
    except (OSError, ConnectionError) as e:  # huggingface_hub's offline / not-found errors are OSErrors
        if local:
            raise ValueError(f"{source} is not a loadable smp checkpoint directory: {e}") from e
        raise RuntimeError(f"could not fetch smp checkpoint {source!r} from the Hugging Face Hub (no internet, or "
                           f"HF_HUB_OFFLINE=1, or a wrong id): {type(e).__name__}: {e}. Offline, use "
                           f"source='embedded' or a local directory.") from e
    head = getattr(model, "segmentation_head", None)
    n_out = getattr(head[0], "out_channels", None) if isinstance(head, torch.nn.Sequential) else None
    if n_out is not None and n_out != len(classes):
        raise ValueError(f"{source} predicts {n_out} classes but {len(classes)} class ids were given")
    return Segmenter(model, classes, name=source if local else source.split("/")[-1], model_size=model_size,
                     device=device)


def load_segmenter(source: str | Path = "embedded", *, device: str | torch.device | None = None,
                   classes: Sequence[int] | None = None, model_size: int | None = None) -> Segmenter:
    """Load a segmenter from "embedded", a segmenter/smp directory, or an smp Hub id (online only).

    `classes` (raw id of each output) and `model_size` (square network input) override or complete what the
    source records; smp Hub SegFormers for ADE20K map output k -> raw id k + 1 without being told.
    """
    if str(source) == "embedded":
        source = EMBEDDED_DIR
        if not (EMBEDDED_DIR / CONFIG_NAME).is_file():
            raise ValueError(f"the embedded segmenter is missing from {EMBEDDED_DIR}; train it with "
                             f"`python -m bench.train_segmenter --out bench/weights/embedded-segmenter`")
    path = Path(source)
    if not path.is_dir():
        if path.suffix or str(source).startswith((".", "/")) or str(source).count("/") != 1:
            raise ValueError(f"segmenter source {str(source)!r} is neither 'embedded', an existing directory, "
                             f"nor a Hub id like 'smp-hub/segformer-b0-512x512-ade-160k'")
        return _load_smp_pretrained(str(source), classes, model_size, device)
    config_path = path / CONFIG_NAME
    if not config_path.is_file():
        raise ValueError(f"{path} has no {CONFIG_NAME}: not a segmenter directory")
    raw = json.loads(config_path.read_text())
    if "_model_class" in raw:  # written by smp's save_pretrained
        return _load_smp_pretrained(str(path), classes, model_size, device)
    try:
        config = SegmenterConfig.from_json(config_path.read_text())
    except (TypeError, ValueError) as e:
        raise ValueError(f"{config_path} is not a valid segmenter config: {e}") from None
    model = build_model(config)
    hint = "retrain with `python -m bench.train_segmenter`"
    state = read_weights(path, how_to_fix=hint)
    check_state_dict(model.state_dict(), state, str(path / WEIGHTS_NAME), hint)
    model.load_state_dict(state)  # floats are cast from the storage dtype to float32
    name = "embedded" if path.resolve() == EMBEDDED_DIR else path.name
    return Segmenter(model, classes if classes is not None else config.classes, name=name,
                     model_size=model_size if model_size is not None else config.model_size,
                     mean=config.mean, std=config.std, class_names=config.class_names, device=device)
