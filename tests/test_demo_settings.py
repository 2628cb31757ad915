"""Demo settings and corruption: validation messages, the reproduce-JSON, deterministic careless-user noise."""
from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

import noise_sim
from demo.classes import ClassTable
from demo.noise import NONE, apply_corruption, check_corruption, corruption_choices, describe
from demo.settings import (CARD, CONTROLS, MAX_SAMPLES, Controls, Request, SavedModel, label_digest, parse_sampling,
                           read_settings, settings_json)
from scdm.checkpoint import read_card
from scdm.config import ModelCard, Precision, Sampler, SamplerConfig, Spacing
from scdm.pipeline import BUNDLED_DIR
from scdm.presets import world_labels
from scdm.settings import SamplingSettings, identity, resolve
from scdm.world import make_scene


@pytest.fixture(scope="module")
def table() -> ClassTable:
    return ClassTable.from_spec(world_labels())


def test_defaults_leave_sampling_to_the_card() -> None:
    r = Request()
    assert r.num_samples == 4 and r.corruption == NONE and Request.parse() == r
    assert r.sampling == SamplingSettings() and parse_sampling() == SamplingSettings()
    assert parse_sampling("", None, CARD, "", None, "", None, " card ") == SamplingSettings()  # empty = card default


def test_parse_accepts_api_types() -> None:
    r = Request.parse("EDGE", 0.5, 7.0, 2.0, parse_sampling("DDIM", 10.0, "Sections", "2", eta="0.5",
                                                            precision="FP32"))
    assert (r.corruption, r.seed, r.num_samples) == ("edge", 7, 2)
    s = r.sampling
    assert (s.sampler, s.steps, s.spacing, s.guidance, s.eta, s.precision) == (
        Sampler.DDIM, 10, Spacing.SECTIONS, 2.0, 0.5, Precision.FP32)
    assert isinstance(s.steps, int) and isinstance(r.seed, int)
    assert s.extrapolation is None and s.dynamic_threshold is None


def parse(corruption="none", severity=0.3, seed=0, num_samples=4, **sampling) -> Request:
    return Request.parse(corruption, severity, seed, num_samples, parse_sampling(**sampling))


@pytest.mark.parametrize("kwargs, match", [
    ({"corruption": "nonsense"}, "unknown corruption 'nonsense'; use one of \\['none', "),
    ({"corruption": 3}, "unknown corruption 3"),
    ({"severity": -0.1}, r"severity must be in \[0, 1\]"),
    ({"severity": 2}, r"severity must be in \[0, 1\]"),
    ({"severity": math.nan}, "severity must be a finite number"),
    ({"severity": "abc"}, "severity must be a number, got 'abc'"),
    ({"severity": None}, "severity must be a number"),
    ({"sampler": "euler"}, "unknown sampler 'euler'; use one of \\['ancestral', 'ddim', 'dpmpp_2m'\\]"),
    ({"sampler": 3}, "unknown sampler 3"),
    ({"spacing": "uniform"}, "unknown spacing 'uniform'; use one of \\['ddim', 'sections', 'quad'\\]"),
    ({"precision": "fp8"}, "unknown precision 'fp8'; use one of \\['fp32', 'bf16', 'fp16', 'auto', 'auto-fp16'\\]"),
    ({"eta": 1.5}, r"eta must be in \[0, 1\]"),
    ({"extrapolation": -1}, r"extrapolation must be in \[0, 10\]"),
    ({"dynamic_threshold": 1}, r"dynamic threshold must be in \[0, 0.999\]"),
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
        parse(**kwargs)


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
    card = ModelCard()
    resolved = resolve(card, SamplingSettings(steps=12), "cpu")
    r = Request.parse("ds", 0.25, 42, 3, parse_sampling("dpmpp_2m", 12, guidance=2.0))
    label = make_scene(0, "test").label
    models = {"SCDM": SavedModel("a", "0123456789abcdef", resolved),
              "SDM": SavedModel("b", "fedcba9876543210", resolved)}
    doc = json.loads(settings_json(r, models=models, label=label, label_file="label.png"))
    assert doc["version"] == 3 and doc["request"]["corruption"] == "ds" and doc["label_sha256"] == label_digest(label)
    assert doc["requested"] == {"sampler": "dpmpp_2m", "steps": 12, "guidance": 2.0}
    assert doc["models"]["SCDM"] == {"name": "a", "digest": "0123456789abcdef", "settings": identity(resolved)}
    back = read_settings(json.dumps(doc))
    assert back.request == r and back.models == models and back.label_file == "label.png" and back.version == 3
    assert read_settings(json.dumps({**doc, "version": 2})).version == 2  # older demos' files
    with pytest.raises(ValueError, match="not a settings file"):
        read_settings("[1, 2]")
    with pytest.raises(ValueError, match="the SDM settings are incomplete"):
        del doc["models"]["SDM"]["settings"]["eta"]
        read_settings(json.dumps(doc))
    with pytest.raises(ValueError, match="version 4 is not supported"):
        read_settings(json.dumps({**doc, "version": 4}))


def test_version_1_files_are_read() -> None:
    """Older demos wrote sampler, steps and guidance with the request, and one precision for both models."""
    doc = {"version": 1, "settings": {"corruption": "edge", "severity": 0.3, "sampler": "ancestral", "steps": 25,
                                      "guidance": 1.5, "seed": 3, "num_samples": 2},
           "models": {"SCDM": "embedded-scdm", "SDM": "embedded-sdm"}, "precision": "bf16", "label_file": "label.png",
           "label_sha256": "00", "edit": None}
    back = read_settings(json.dumps(doc))
    expect = SamplingSettings(sampler="ancestral", steps=25, guidance=1.5, precision="bf16")
    assert back.version == 1 and back.request == Request("edge", 0.3, 3, 2, expect)
    assert back.models["SDM"] == SavedModel("embedded-sdm", None, expect)


def test_controls_show_the_embedded_and_official_card_defaults() -> None:
    """The demo's default path runs the embedded cards' defaults: DDIM 20 quad steps, eta 1, guidance 1.75, precision
    auto (within the CPU latency budget); official cards: ancestral 25 on ddim25, fp16."""
    cards = {slot: read_card(BUNDLED_DIR / name) for slot, name in (("SCDM", "embedded-scdm"), ("SDM", "embedded-sdm"))}
    c = Controls.of(cards)
    shown = {name: c.shown(name) for name in CONTROLS}
    assert shown == {"sampler": Sampler.DDIM, "steps": 20, "spacing": Spacing.QUAD, "guidance": 1.75, "eta": 1.0,
                     "extrapolation": 0.0, "dynamic_threshold": 0.95, "precision": Precision.AUTO}
    official = Controls.of({"SCDM": ModelCard()})
    assert [official.shown(k) for k in ("sampler", "steps", "spacing", "precision")] == [
        Sampler.ANCESTRAL, 25, Spacing.DDIM, Precision.AUTO_FP16]


def test_controls_send_only_what_changed() -> None:
    scdm = replace(ModelCard(), sampler=replace(SamplerConfig(), sampler=Sampler.DDIM, steps=15, eta=1.0))
    sdm = ModelCard()  # ancestral, 25 steps
    c = Controls.of({"SCDM": scdm, "SDM": sdm})
    assert c.shown("guidance") == 1.5 and c.shown("sampler") is None and c.shown("steps") is None
    assert c.card_values("steps") == "SCDM 15 · SDM 25" and c.card_values("guidance") == "1.5"
    # untouched controls (shown values, CARD, empty boxes) send nothing; changed ones are sent for both models
    untouched = parse_sampling(CARD, None, "ddim", 1.5, None, 0.8, 0.95 + 1e-12, "auto-fp16")
    assert c.changes(untouched) == SamplingSettings()
    assert c.changes(parse_sampling("ddim", 25, "ddim", 2.0, 0.0, 0.8, 0.95, "fp32")) == SamplingSettings(
        sampler="ddim", steps=25, guidance=2.0, eta=0.0, precision="fp32")  # SDM's own 25 steps, SCDM's 15 -> 25
    # the server's settings are shown and always sent; the API sends every value it is given
    server = Controls.of({"SCDM": scdm, "SDM": sdm}, SamplingSettings(precision="fp32"))
    assert server.shown("precision") == Precision.FP32 and server.changes(SamplingSettings(precision="fp32")) == \
        SamplingSettings(precision="fp32")
    assert server.given(parse_sampling(guidance=1.5)) == SamplingSettings(guidance=1.5, precision="fp32")
