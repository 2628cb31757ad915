"""SCDM: robust semantic image synthesis with Stochastic Conditional Diffusion Models (ICML 2024) on SDM.

Quick start::

    import scdm
    pipe = scdm.load_pipeline("embedded-scdm")
    images = pipe.generate(labels)  # labels: (B, H, W) raw dataset ids -> (B, H, W, 3) uint8
"""
from .config import (DiffusionConfig, LabelDiffusionConfig, LabelSchedule, LabelSpec, ModelCard, NoiseSchedule,
                     Precision, Sampler, SamplerConfig, Spacing, UNetConfig)
from .official import convert_official
from .pipeline import BUNDLED, Pipeline, load_pipeline
from .samplers import StepInfo
from .seeds import image_seed
from .settings import SamplingSettings
from .unet import UNet

__version__ = "0.1.0"

__all__ = [
    "BUNDLED", "DiffusionConfig", "LabelDiffusionConfig", "LabelSchedule", "LabelSpec", "ModelCard", "NoiseSchedule",
    "Pipeline", "Precision", "Sampler", "SamplerConfig", "SamplingSettings", "Spacing", "StepInfo", "UNet", "UNetConfig",
    "convert_official", "image_seed", "load_pipeline",
]
