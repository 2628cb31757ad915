"""Demo settings and corruption: validation messages, the reproduce-JSON, deterministic careless-user noise."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import noise_sim
from demo.classes import ClassTable
from demo.noise import NONE, apply_corruption, check_corruption, corruption_choices, describe
from demo.settings import MAX_SAMPLES, GenerateSettings, label_digest, read_settings, settings_json
from scdm.presets import world_labels
from scdm.world import make_scene


@pytest.fixture(scope="module")
def table() -> ClassTable:
    return ClassTable.from_spec(world_labels())


def test_defaults_are_cpu_friendly() -> None:
    s = GenerateSettings()
    assert s.num_samples == 4 and s.corruption == NONE and GenerateSettings.parse() == s


def test_parse_accepts_api_types() -> None:
    s = GenerateSettings.parse("EDGE", 0.5, "ddim", 10.0, "2", 7.0, 2.0)
    assert (s.corruption, s.sampler, s.steps, s.guidance, s.seed, s.num_samples) == ("edge", "ddim", 10, 2.0, 7, 2)
    assert isinstance(s.steps, int) and isinstance(s.seed, int)


@pytest.mark.parametrize("kwargs, match", [
    ({"corruption": "nonsense"}, "unknown corruption 'nonsense'; use one of \\['none', "),
    ({"corruption": 3}, "unknown corruption 3"),
    ({"severity": -0.1}, r"severity must be in \[0, 1\]"),
    ({"severity": 2}, r"severity must be in \[0, 1\]"),
    ({"severity": math.nan}, "severity must be a finite number"),
    ({"severity": "abc"}, "severity must be a number, got 'abc'"),
    ({"severity": None}, "severity must be a number"),
    ({"sampler": "euler"}, "unknown sampler 'euler'; use one of \\['ancestral', 'ddim', 'dpmpp_2m'\\]"),
    ({"steps": 0}, r"steps must be in \[1, 250\]"),
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"guidance": -1}, r"guidance must be in \[0, 20\]"),
    ({"guidance": math.inf}, "guidance must be a finite number"),
    ({"seed": -1}, "seed must be in"),
    ({"num_samples": 0}, r"number of samples must be in \[1, 8\]"),
    ({"num_samples": MAX_SAMPLES + 1}, "number of samples must be in"),
    ({"num_samples": True}, "number of samples must be a number"),
])
def test_parse_rejects_nonsense_with_a_message(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GenerateSettings.parse(**kwargs)


def test_choices_cover_every_kind() -> None:
    assert corruption_choices() == [NONE, *noise_sim.KINDS]
    assert all(describe(k) for k in corruption_choices())
    with pytest.raises(ValueError):
        check_corruption("none", 1.5)


def test_corruption_is_deterministic_and_valid(table: ClassTable) -> None:
    label = make_scene(2, "test").label.astype(np.int64)
    for kind in noise_sim.KINDS:
        a = apply_corruption(label, kind, 0.5, 3, table)
        b = apply_corruption(label, kind, 0.5, 3, table)
        assert np.array_equal(a, b), kind
        assert not table.invalid_ids(a), kind
    assert np.array_equal(apply_corruption(label, NONE, 0.9, 0, table), label)
    assert np.array_equal(apply_corruption(label, "edge", 0.0, 0, table), label)
    assert (apply_corruption(label, "random", 0.5, 0, table) == 0).mean() > 0.02  # unlabeled = fill id 0


def test_settings_json_round_trip() -> None:
    s = GenerateSettings.parse("ds", 0.25, "dpmpp_2m", 12, 2.0, 42, 3)
    label = make_scene(0, "test").label
    doc = json.loads(settings_json(s, models={"SCDM": "a", "SDM": "b"}, label=label, label_file="label.png"))
    assert doc["settings"]["corruption"] == "ds" and doc["label_sha256"] == label_digest(label)
    assert read_settings(json.dumps(doc)) == s
    with pytest.raises(ValueError, match="not a settings file"):
        read_settings("[1, 2]")


def test_cpu_defaults_and_precision() -> None:
    import torch

    from demo.runner import autocast_dtype
    from demo.settings import CPU_DEFAULTS

    assert CPU_DEFAULTS.num_samples == 4 and CPU_DEFAULTS.sampler == "ddim" and CPU_DEFAULTS.steps <= 20
    assert "eta" not in CPU_DEFAULTS.generate_kwargs()  # DDIM's eta comes from the card (1 for the embedded models)
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None and autocast_dtype("bf16", cpu) == torch.bfloat16
    assert autocast_dtype("auto", cpu) in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast_dtype("fp8", cpu)
