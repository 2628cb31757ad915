"""The bundled embedded models: they load by name with no flags, match their presets, and generate."""
from __future__ import annotations

import numpy as np
import pytest

from scdm.config import LabelSchedule
from scdm.pipeline import BUNDLED_DIR, load_pipeline
from scdm.presets import EMBEDDED_SAMPLER, EMBEDDED_UNET, world_labels
from scdm.world import WorldConfig, make_split


@pytest.mark.parametrize(("name", "schedule"), [("embedded-scdm", LabelSchedule.CLASSWISE),
                                                ("embedded-sdm", LabelSchedule.NONE),
                                                ("embedded-scdm-uniform", LabelSchedule.UNIFORM)])
def test_bundled_model_loads_matches_its_preset_and_generates(name: str, schedule: LabelSchedule) -> None:
    weights = BUNDLED_DIR / name / "model.safetensors"
    assert weights.stat().st_size <= 25 * 2**20  # a bundled model stays small enough to ship in the repository
    pipe = load_pipeline(name, device="cpu")
    card = pipe.card
    assert card.unet == EMBEDDED_UNET and card.labels == world_labels() and card.sampler == EMBEDDED_SAMPLER
    assert card.label_diffusion.schedule == schedule and pipe.is_scdm == (schedule != LabelSchedule.NONE)
    if schedule == LabelSchedule.CLASSWISE:  # kappa from the training set: one per class, rare classes diffuse later
        assert len(card.label_diffusion.kappa) == card.labels.num_classes and min(card.label_diffusion.kappa) > 0
    labels = make_split("test", 1, WorldConfig(size=64))["labels"]
    images = pipe.generate(labels, steps=2, seed=0, num_samples=2)
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.uint8
    assert images.std() > 5 and not np.array_equal(images[0], images[1])  # a picture, and two different ones
