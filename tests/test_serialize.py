"""scdm.serialize: one typed (de)serialiser for model cards, sampling settings, bench configs, segmenter cards and
the demo's settings.json. Round trips, type checks (a bool is not an int, an int is not a bool, an int is a float),
unknown keys and enum values, one-line errors naming the dotted field, format versions, the bundled cards."""
from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import Any, Literal

import pytest

from bench.config import (BenchConfig, CorruptionSpec, DatasetKind, DatasetSpec, Metric, Mode, ModelKind, ModelSpec,
                          Reference, config_to_json, load_config)
from bench.segmenter import EMBEDDED_DIR, FORMAT, SegmenterConfig
from demo.settings import Request, SavedModel, parse_sampling, read_settings, settings_json
from scdm.checkpoint import read_card
from scdm.config import (CARD_FORMAT, DiffusionConfig, LabelDiffusionConfig, LabelSchedule, LabelSpec, ModelCard,
                         NoiseSchedule, Precision, Sampler, SamplerConfig, Spacing, TrainConfig, UNetConfig,
                         card_from_json, card_to_json)
from scdm.pipeline import BUNDLED_DIR
from scdm.presets import EMBEDDED_TRAIN, OFFICIAL_CARDS, PRESETS, world_labels
from scdm.serialize import from_json_value, split_format, to_json_value
from scdm.settings import SamplingSettings, identity, resolve

ROOT = Path(__file__).resolve().parents[1]


def through_json(obj: Any) -> Any:
    """obj -> JSON text -> the same class: what a file round trip does."""
    return from_json_value(type(obj), json.loads(json.dumps(to_json_value(obj))), "x")


# ---------------------------------------------------------------------------------------------- round trips

CARD = ModelCard(
    unet=UNetConfig(image_size=32, model_channels=16, channel_mult=(1, 2), attention_ds=(2,), learn_sigma=False,
                    dropout=0.1),
    diffusion=DiffusionConfig(num_timesteps=500, noise_schedule=NoiseSchedule.COSINE),
    labels=LabelSpec(num_classes=3, raw_ids=(2, 5, 9), unlabeled_id=0, unlabeled_to_null=True, use_edges=True,
                     class_names=("a", "b", "c"), palette=((1, 2, 3), (4, 5, 6), (7, 8, 9))),
    label_diffusion=LabelDiffusionConfig(LabelSchedule.UNIFORM, kappa=(1.5, 2.0, 30.25)),
    sampler=SamplerConfig(Sampler.DPMPP_2M, 7, Spacing.SECTIONS, 2.5, 0.0, 0.9, 0.3, Precision.BF16),
    name="n", dataset="d", info={"train": to_json_value(EMBEDDED_TRAIN), "stages": [{"steps": 3}], "x": None})


@pytest.mark.parametrize("obj", [
    UNetConfig(), DiffusionConfig(), LabelSpec(), LabelDiffusionConfig(), SamplerConfig(), ModelCard(), TrainConfig(),
    CARD.unet, CARD.diffusion, CARD.labels, CARD.label_diffusion, CARD.sampler, CARD, EMBEDDED_TRAIN,
    TrainConfig(decay_from=100, lr_min=1e-6, ema_warmup=False, precision=Precision.BF16),
    world_labels(), *(make() for make in OFFICIAL_CARDS.values()), *(make().card for make in PRESETS.values()),
    SamplingSettings(), SamplingSettings(Sampler.DDIM, 3, Spacing.DDIM, 1.0, 0.5, 0.9, 1.0, Precision.AUTO, False),
    BenchConfig(), DatasetSpec(DatasetKind.ADE20K, "root", "val", 128, 3, Reference.EVAL, 10, 7),
    ModelSpec("m", "src", ModelKind.FLAT_PAINT, Mode.SDM), CorruptionSpec("edge", (0.25, 1.0)),
    BenchConfig(models=(ModelSpec("a", "embedded-scdm", mode=Mode.SCDM),), corruptions=(), seeds=(3, 1),
                samplers=(SamplingSettings(), SamplingSettings(steps=4, guidance=3.0, label_diffusion=True)),
                metrics=(Metric.MIOU, Metric.KID), limit=5, precision=Precision.FP32, device="cpu", figures=False),
    SegmenterConfig(), SegmenterConfig(arch_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
                                       classes=(2, 3), class_names=("x", "y"), model_size=96, mean=(0.1, 0.2, 0.3),
                                       metrics={"miou": 0.5}, training={"steps": 3}),
], ids=lambda o: type(o).__name__)
def test_every_config_round_trips_through_json(obj) -> None:
    back = through_json(obj)
    assert back == obj and type(back) is type(obj)


def test_cards_round_trip_with_their_format_version() -> None:
    text = card_to_json(CARD)
    doc = json.loads(text)
    assert next(iter(doc)) == "format" and doc["format"] == CARD_FORMAT == 1
    assert card_from_json(text) == CARD
    assert card_from_json(text).info["train"] == to_json_value(EMBEDDED_TRAIN)
    assert from_json_value(TrainConfig, card_from_json(text).info["train"], "train") == EMBEDDED_TRAIN


def test_values_come_back_with_their_declared_types() -> None:
    card = card_from_json(json.dumps({"sampler": {"guidance": 2, "sampler": "ddim"}, "unet": {"dropout": 0},
                                      "labels": {"palette": [[1, 2, 3]], "raw_ids": [4]}}))
    assert card.sampler.guidance == 2.0 and type(card.sampler.guidance) is float  # an int is a float
    assert type(card.unet.dropout) is float and card.sampler.sampler is Sampler.DDIM
    assert card.labels.palette == ((1, 2, 3),) and card.labels.raw_ids == (4,)  # lists become tuples
    s = from_json_value(SamplingSettings, {"steps": 3, "eta": 1, "precision": None}, "s")
    assert s == SamplingSettings(steps=3, eta=1.0) and type(s.eta) is float


# ---------------------------------------------------------------------------------------------- errors

def card_error(doc: dict) -> str:
    with pytest.raises(ValueError) as e:
        card_from_json(json.dumps(doc))
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("doc, message", [
    ({"sampler": {"steps": "25"}}, "card.sampler.steps: expected int, got str '25'"),  # str for int
    ({"sampler": {"steps": 25.0}}, "card.sampler.steps: expected int, got float 25.0"),  # float for int
    ({"sampler": {"steps": True}}, "card.sampler.steps: expected int, got bool True"),  # bool for int
    ({"sampler": {"steps": None}}, "card.sampler.steps: expected int, got null"),
    ({"sampler": {"guidance": True}}, "card.sampler.guidance: expected float, got bool True"),  # bool for float
    ({"sampler": {"guidance": "1.5"}}, "card.sampler.guidance: expected float, got str '1.5'"),
    ({"unet": {"learn_sigma": 1}}, "card.unet.learn_sigma: expected bool (true or false), got int 1"),  # int for bool
    ({"unet": {"learn_sigma": "true"}}, "card.unet.learn_sigma: expected bool (true or false), got str 'true'"),
    ({"name": 3}, "card.name: expected str, got int 3"),
    ({"unet": {"widht": 3}}, "card.unet: unknown fields ['widht']; known fields are ['image_size', "),
    ({"unet": {}, "labls": {}}, "card: unknown fields ['labls']; known fields are ['unet', 'diffusion', "),
    ({"sampler": {"sampler": "euler"}}, "card.sampler.sampler: 'euler' is not one of ['ancestral', 'ddim', 'dpmpp_2m']"),
    ({"sampler": {"precision": "fp8"}}, "card.sampler.precision: 'fp8' is not one of ['fp32', 'bf16', 'fp16', 'auto', "),
    ({"diffusion": {"noise_schedule": 1}}, "card.diffusion.noise_schedule: 1 is not one of ['linear', 'cosine']"),
    ({"label_diffusion": {"schedule": None}}, "card.label_diffusion.schedule: None is not one of ['none', "),
    ({"label_diffusion": {"kappa": [1.0, "x"]}}, "card.label_diffusion.kappa[1]: expected float, got str 'x'"),
    ({"labels": {"raw_ids": "abc"}}, "card.labels.raw_ids: expected a list of int or null, got str 'abc'"),
    ({"labels": {"unlabeled_id": 0.5}}, "card.labels.unlabeled_id: expected int or null, got float 0.5"),
    ({"labels": {"palette": [[1, 2, 3], [1, 2]]}},
     "card.labels.palette[1]: expected a list of 3 (int, int, int), got 2 items list [1, 2]"),
    ({"labels": {"palette": [[1, 2, "x"]]}}, "card.labels.palette[0][2]: expected int, got str 'x'"),
    ({"unet": [1, 2]}, "card.unet: expected an object (UNetConfig), got list [1, 2]"),
    ({"info": []}, "card.info: expected an object, got list []"),
])
def test_wrong_types_unknown_keys_and_enum_values_name_the_field(doc: dict, message: str) -> None:
    assert card_error(doc).startswith(message)


def test_card_format_versions() -> None:
    fields = to_json_value(CARD)
    assert card_from_json(json.dumps(fields)) == CARD  # cards written before the key are format 1
    assert card_from_json(json.dumps({"format": 1, **fields})) == CARD
    assert card_error({"format": 2, **fields}) == ("card.format: version 2 is newer than this code reads (up to 1); "
                                                   "update scdm to read it")
    assert card_error({"format": "1", **fields}).startswith("card.format: expected int (a format version), got str")
    assert card_error({"format": 0}) == "card.format: expected a format version >= 1, got 0"
    with pytest.raises(ValueError, match=r"^card: expected an object, got list \[1\]$"):
        card_from_json("[1]")
    assert split_format({"v": 1, "a": 2}, current=1, key="v") == (1, {"a": 2})


@dataclasses.dataclass(frozen=True)
class Inner:
    colour: Literal["red", "blue"] = "red"
    weights: dict[str, float] = dataclasses.field(default_factory=dict)


class Shape(enum.Enum):
    ROUND = 1
    SQUARE = 2


@dataclasses.dataclass(frozen=True)
class Outer:
    name: str  # required
    inner: Inner | None = None
    items: list[Inner] = dataclasses.field(default_factory=list)
    by_slot: dict[str, Inner] = dataclasses.field(default_factory=dict)
    either: int | str = 0
    shape: Shape = Shape.ROUND
    anything: Any = None


def test_generic_types() -> None:
    value = Outer("o", Inner("blue", {"a": 1}), [Inner()], {"S": Inner(weights={"b": 0.5})}, "x", Shape.SQUARE,
                  {"k": [1, "2"]})
    assert to_json_value(value)["shape"] == 2 and through_json(value) == value
    assert from_json_value(Outer, {"name": "o", "either": 3}, "o").either == 3
    for doc, message in (
            ({}, "o.name: missing; expected str"),
            ({"name": "o", "inner": {"colour": "green"}}, "o.inner.colour: 'green' is not one of ['red', 'blue']"),
            ({"name": "o", "inner": 3}, "o.inner: expected an object (Inner) or null, got int 3"),
            ({"name": "o", "items": [{}, {"weights": {"a": "1"}}]}, "o.items[1].weights.a: expected float, got str"),
            ({"name": "o", "by_slot": {"SCDM": {"x": 1}}}, "o.by_slot.SCDM: unknown fields ['x']"),
            ({"name": "o", "either": 1.5}, "o.either: expected int or str, got float 1.5"),
            ({"name": "o", "shape": "ROUND"}, "o.shape: 'ROUND' is not one of [1, 2]")):
        with pytest.raises(ValueError) as e:
            from_json_value(Outer, doc, "o")
        assert str(e.value).startswith(message), str(e.value)
    with pytest.raises(ValueError, match=r"^name: expected str, got int 1$"):  # where="": no root name
        from_json_value(Outer, {"name": 1}, "")
    with pytest.raises(TypeError, match="cannot write a set"):
        to_json_value(Outer("o", anything={1}))


# ---------------------------------------------------------------------------------------------- bundled cards

EXPECTED_SAMPLER = SamplerConfig(Sampler.DDIM, 20, Spacing.QUAD, 1.75, 0.0, 0.95, 1.0, Precision.AUTO)


@pytest.mark.parametrize("name, schedule", [("embedded-scdm", LabelSchedule.CLASSWISE),
                                            ("embedded-sdm", LabelSchedule.NONE),
                                            ("embedded-scdm-uniform", LabelSchedule.UNIFORM)])
def test_bundled_cards_read_unchanged(name: str, schedule: LabelSchedule) -> None:
    path = BUNDLED_DIR / name / "config.json"
    text = path.read_text()
    assert json.loads(text)["format"] == 1
    card = read_card(path.parent)
    # the preset it was trained from, plus the kappa estimated from the training set and the training info
    assert dataclasses.replace(card, label_diffusion=LabelDiffusionConfig(schedule), info={}) == PRESETS[name]().card
    assert (card.name, card.dataset, card.sampler) == (name, "embedded", EXPECTED_SAMPLER)
    assert card.unet == UNetConfig(image_size=64, model_channels=32, channel_mult=(1, 2, 3, 3), num_res_blocks=1,
                                   attention_ds=(4, 8), num_head_channels=32, label_channels=12, spade_hidden=24,
                                   groupnorm_groups=8)
    assert card.diffusion == DiffusionConfig(1000, NoiseSchedule.LINEAR)
    assert card.labels == world_labels() and card.labels.raw_ids == (2, 3, 5, 7, 10, 12, 17, 22, 30, 35, 47, 67)
    assert card.label_diffusion.schedule == schedule
    assert len(card.label_diffusion.kappa) == (12 if schedule == LabelSchedule.CLASSWISE else 0)
    # the v2 recipe, recorded in full so the training command reproduces from the card
    assert card.info == {"train_steps": 10_000, "train_images": 160_000, "precision": "bf16",
                         "train": to_json_value(PRESETS[name]().train)}
    assert card_to_json(card) == text  # written back byte for byte (Pipeline.digest)


def test_bundled_segmenter_card_reads_unchanged() -> None:
    text = (EMBEDDED_DIR / "config.json").read_text()
    doc = json.loads(text)
    assert doc["format"] == FORMAT and "format_version" not in doc
    config = SegmenterConfig.from_json(text)
    assert (config.architecture, config.encoder, config.input_size, config.model_size) == (
        "Unet", "tu-tf_efficientnet_lite0", 64, None)
    assert config.classes == world_labels().raw_ids and config.class_names == world_labels().class_names
    assert config.mean == config.std == (0.5, 0.5, 0.5) and config.weights_dtype == "float16"
    assert config.arch_kwargs == {"encoder_depth": 5, "decoder_channels": [128, 64, 32, 16, 16]}
    assert config.metrics["miou"] == 0.7607 and config.training["steps"] == 762
    assert json.loads(config.to_json()) == {**doc, "format_version": 1}
    assert SegmenterConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize("change, message", [
    ({"format_version": 2}, "segmenter.format_version: version 2 is newer than this code reads (up to 1)"),
    ({"input_size": "64"}, "segmenter.input_size: expected int, got str '64'"),
    ({"mean": [0.5, 0.5]}, "segmenter.mean: expected a list of 3 (float, float, float), got 2 items"),
    ({"classes": [1, True]}, "segmenter.classes[1]: expected int, got bool True"),
    ({"colour": 1}, "segmenter: unknown fields ['colour']"),
])
def test_segmenter_card_errors_name_the_field(change: dict, message: str) -> None:
    doc = {**json.loads(SegmenterConfig().to_json()), **change}
    with pytest.raises(ValueError) as e:
        SegmenterConfig.from_json(json.dumps(doc))
    assert str(e.value).startswith(message) and "\n" not in str(e.value), str(e.value)
    with pytest.raises(ValueError, match="not a scdm-segmenter config"):
        SegmenterConfig.from_json(json.dumps({**doc, "format": "other"}))


# ---------------------------------------------------------------------------------------------- bench config

@pytest.mark.parametrize("body, message", [
    ('[[samplers]]\nsteps = "25"\n', "samplers[0].steps: expected int or null, got str '25'"),
    ('[[samplers]]\n[[samplers]]\nguidance = true\n', "samplers[1].guidance: expected float or null, got bool True"),
    ('[[samplers]]\nlabel_diffusion = 1\n',
     "samplers[0].label_diffusion: expected bool (true or false) or null, got int 1"),
    ('seeds = [0, 1.5]\n', "seeds[1]: expected int, got float 1.5"),
    ('clean = "yes"\n', "clean: expected bool (true or false), got str 'yes'"),
    ('[dataset]\nkind = "cityscape"\n', "dataset.kind: 'cityscape' is not one of ['embedded', 'ade20k', "),
    ('[[models]]\nsource = "x"\n', "models[0].name: missing; expected str"),
    ('[[models]]\nname = "a"\nmode = "SDM"\n', "models[0].mode: 'SDM' is not one of ['auto', 'scdm', 'sdm']"),
    ('[[corruptions]]\nkind = "ds"\nseverities = 0.5\n',
     "corruptions[0].severities: expected a list of float, got float 0.5"),
    ('limit = "all"\n', "limit: expected int or null, got str 'all'"),
    ('format = 2\n', "format: version 2 is newer than this code reads (up to 1)"),
    ('sampler = "ddim"\n', "top level: unknown fields ['sampler']; known fields are ['dataset', 'models', "),
])
def test_bench_config_errors_are_one_line_naming_the_field(tmp_path, body: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(body)
    with pytest.raises(ValueError) as e:
        load_config(path)
    assert str(e.value).startswith(f"config file {path}: {message}") and "\n" not in str(e.value), str(e.value)


def test_bench_config_files_carry_a_format_and_read_without_one(tmp_path) -> None:
    cfg = BenchConfig(seeds=(1, 2), limit=3)
    doc = json.loads(config_to_json(cfg))
    assert next(iter(doc)) == "format" and doc["format"] == 1
    for content in (doc, {k: v for k, v in doc.items() if k != "format"}):
        (tmp_path / "c.json").write_text(json.dumps(content))
        assert load_config(tmp_path / "c.json") == cfg
    for name in ("paper_ade20k.toml", "embedded_quality.toml", "embedded_sampler.toml", "few_steps.toml"):
        if (ROOT / "bench" / "configs" / name).is_file():
            assert isinstance(load_config(ROOT / "bench" / "configs" / name), BenchConfig)


def test_cli_bad_config_prints_one_line_and_exits_2(tmp_path, capsys) -> None:
    from bench.__main__ import main

    bad = tmp_path / "BAD.toml"
    bad.write_text('[[samplers]]\nsampler = "ddim"\nsteps = "25"\n')
    try:
        code = main(["run", "--config", str(bad), "--out", str(tmp_path / "out"), "--quiet"])
    except SystemExit as e:
        code = e.code
    assert code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()  # one line: "[python -m bench: ]error: config file ..."
    assert line.endswith(f"error: config file {bad}: samplers[0].steps: expected int or null, got str '25'"), line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- demo settings.json

def saved_doc() -> dict:
    resolved = resolve(ModelCard(), SamplingSettings(steps=12), "cpu")
    r = Request.parse("ds", 0.25, 42, 3, parse_sampling("ddim", 12, guidance=2.0))
    models = {"SCDM": SavedModel("a", "0123456789abcdef", resolved)}
    import numpy as np

    return json.loads(settings_json(r, models=models, label=np.zeros((4, 4), np.int64), label_file="label.png"))


@pytest.mark.parametrize("path, value, message", [
    (("models", "SCDM", "settings", "steps"), "12", "models.SCDM.settings.steps: expected int or null, got str '12'"),
    (("models", "SCDM", "settings", "sampler"), "euler", "models.SCDM.settings.sampler: 'euler' is not one of"),
    (("models", "SCDM", "digest"), None, "models.SCDM.digest: expected str, got null"),
    (("request", "seed"), "42", "request.seed: expected int, got str '42'"),
    (("request", "num_samples"), True, "request.num_samples: expected int, got bool True"),
    (("request", "severity"), 2, "request: severity must be in [0, 1], got 2"),
    (("requested", "guidance"), [2], "requested.guidance: expected float or null, got list [2]"),
    (("requested", "sampler"), "euler", "requested.sampler: 'euler' is not one of"),
    (("label_file",), 3, "label_file: expected str, got int 3"),
    (("colour",), 3, "top level: unknown fields ['colour']"),
])
def test_demo_settings_errors_are_one_line_naming_the_field(path: tuple, value: Any, message: str) -> None:
    doc = saved_doc()
    assert read_settings(json.dumps(doc)).models["SCDM"].settings.steps == 12
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError) as e:
        read_settings(json.dumps(doc))
    assert str(e.value).startswith(f"settings.json: {message}") and "\n" not in str(e.value), str(e.value)


def test_demo_version_1_settings_are_type_checked() -> None:
    doc = {"version": 1, "settings": {"corruption": "edge", "severity": 0.3, "sampler": "ancestral", "steps": 25,
                                      "guidance": 1.5, "seed": 3, "num_samples": 2},
           "models": {"SCDM": "embedded-scdm"}, "precision": "bf16", "label_file": "label.png",
           "label_sha256": "00", "edit": None, "reproduce": "..."}
    assert read_settings(json.dumps(doc)).models["SCDM"].settings.steps == 25
    for key, value, message in (("steps", "25", "settings.steps: expected int, got str '25'"),
                                ("sampler", "euler", "settings: unknown sampler 'euler'"),
                                ("seed", 1.5, "settings.seed: expected int, got float 1.5")):
        bad = {**doc, "settings": {**doc["settings"], key: value}}
        with pytest.raises(ValueError) as e:
            read_settings(json.dumps(bad))
        assert str(e.value).startswith(f"settings.json: {message}"), str(e.value)
    with pytest.raises(ValueError, match=r"^settings.json: models.SCDM: expected str, got int 3$"):
        read_settings(json.dumps({**doc, "models": {"SCDM": 3}}))


def test_identity_is_the_serialised_resolved_settings() -> None:
    resolved = resolve(ModelCard(), SamplingSettings(steps=12), "cpu")
    assert identity(resolved) == to_json_value(resolved)
    assert from_json_value(SamplingSettings, identity(resolved), "s") == resolved
