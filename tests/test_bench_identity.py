"""bench cell identities: a cell is its model's weights plus its fully resolved sampler setting, so a run folder
never mixes images made with different settings or weights (tiny random-weight checkpoints, 2 labels at 32 px)."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench.config import (BenchConfig, DatasetSpec, Metric, Mode, ModelKind, ModelSpec, Precision, Sampler, Spacing,
                          load_config)
from bench.report import read_table
from bench.run import run
from bench.store import IDENTITY_NAME
from scdm.config import LabelDiffusionConfig, LabelSchedule, ModelCard, SamplerConfig
from scdm.settings import SamplingSettings, identity, resolve

# the card's own sampler differs from the bench's default (ancestral, 25 steps) in every field
CARD_SAMPLER = SamplerConfig(sampler=Sampler.DDIM, steps=3, spacing=Spacing.SECTIONS, guidance=2.0, extrapolation=0.0,
                             dynamic_threshold=0.9, eta=1.0, precision=Precision.FP32)


def save_tiny(path: Path, weight_seed: int = 0) -> Path:
    """A tiny SCDM checkpoint on the embedded world's classes; `weight_seed` picks its (random) weights."""
    from scdm.checkpoint import save_checkpoint
    from scdm.presets import TINY_UNET, world_labels
    from scdm.unet import UNet

    torch.manual_seed(weight_seed)
    model = UNet(TINY_UNET)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    card = ModelCard(unet=TINY_UNET, labels=world_labels(), name=path.name, sampler=CARD_SAMPLER,
                     label_diffusion=LabelDiffusionConfig(LabelSchedule.CLASSWISE, kappa=(2.0,) * 12))
    return save_checkpoint(path, model.state_dict(), card)


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory) -> Path:
    from scdm.world import CLASS_IDS
    from test_bench_run import tiny_segmenter

    return tiny_segmenter(tmp_path_factory.mktemp("seg") / "seg", CLASS_IDS)


@pytest.fixture
def generated(monkeypatch) -> list[int]:
    """Images generated so far (every Pipeline.generate call adds its batch)."""
    from scdm.pipeline import Pipeline

    counts: list[int] = []
    original = Pipeline.generate

    def counting(self, labels, **kw):
        images = original(self, labels, **kw)
        counts.append(len(images))
        return images

    monkeypatch.setattr(Pipeline, "generate", counting)
    return counts


def config(ckpt: Path, segmenter: Path, *samplers: SamplingSettings, **kw) -> BenchConfig:
    cfg = BenchConfig(dataset=DatasetSpec(resolution=32, world_scenes=2, flat_paint_images=2),
                      models=(ModelSpec("scdm", str(ckpt)), ModelSpec("real", kind=ModelKind.REAL)), corruptions=(),
                      samplers=samplers or (SamplingSettings(steps=2),), diversity_labels=0, metrics=(Metric.MIOU,),
                      segmenter=str(segmenter), batch_size=4, device="cpu", figures=False, precision=Precision.FP32)
    return replace(cfg, **kw)


def pngs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def setting_folders(out: Path, model: str = "scdm") -> list[Path]:
    return sorted(p for p in (out / "samples" / model).iterdir() if p.is_dir())


def test_identical_rerun_reuses_everything_and_records_the_identity(tmp_path, segmenter, generated) -> None:
    from scdm.pipeline import load_pipeline

    ckpt, out = save_tiny(tmp_path / "tiny"), tmp_path / "run"
    cfg = config(ckpt, segmenter)
    run(cfg, out)
    assert sum(generated) == 2
    (folder,) = setting_folders(out)
    pipe = load_pipeline(ckpt, device="cpu")
    resolved = pipe.resolve(SamplingSettings(steps=2, precision="fp32", label_diffusion=None))
    ident = json.loads((folder / IDENTITY_NAME).read_text())
    assert ident == {"format": 1, "model": "scdm", "kind": "diffusion", "weights": pipe.digest,
                     "settings": identity(resolved)}
    assert json.loads((out / "samples" / "real" / "none" / IDENTITY_NAME).read_text())["weights"] is None
    table, before = (out / "metrics.csv").read_bytes(), pngs(out)
    run(cfg, out)
    assert sum(generated) == 2  # nothing sampled again
    assert pngs(out) == before and (out / "metrics.csv").read_bytes() == table
    # the table carries the whole resolved setting and the weights
    df = read_table(out)
    row = df[df["model"] == "scdm"].iloc[0]
    assert {k: row[k] for k in identity(resolved)} == identity(resolved) and row["weights"] == pipe.digest
    ref = df[df["model"] == "real"].iloc[0]
    assert (ref["sampler"], ref["precision"], ref["weights"]) == ("none", "none", "")


def test_changed_settings_are_new_cells(tmp_path, segmenter, generated) -> None:
    ckpt, out = save_tiny(tmp_path / "tiny"), tmp_path / "run"
    base = SamplingSettings(steps=2)
    run(config(ckpt, segmenter, base), out)
    old = pngs(out / "samples" / "scdm")
    changes = [({"precision": Precision.BF16}, "precision", "bf16"), ({"extrapolation": 0.5}, "extrapolation", 0.5),
               ({"spacing": Spacing.DDIM}, "spacing", "ddim")]
    for k, (change, column, value) in enumerate(changes, start=1):
        made = sum(generated)
        run(config(ckpt, segmenter, replace(base, **change)), out)
        assert sum(generated) == made + 2, change  # the new setting is sampled, not taken from the old folder
        assert len(setting_folders(out)) == 1 + k
        df = read_table(out)
        assert set(df[df["model"] == "scdm"][column]) == {value}  # this run's table: the new setting only
    assert {k: v for k, v in pngs(out / "samples" / "scdm").items() if k in old} == old  # old cells untouched
    # every setting in one config: reused, one row family each, never collapsed
    made = sum(generated)
    run(config(ckpt, segmenter, base, *(replace(base, **c) for c, _, _ in changes)), out)
    assert sum(generated) == made
    miou = read_table(out).query("model == 'scdm' and metric == 'miou'")
    assert len(miou) == 4 and len(miou.drop_duplicates(["precision", "extrapolation", "spacing"])) == 4


def test_settings_that_resolve_alike_are_one_cell(tmp_path, segmenter, generated) -> None:
    """Asking explicitly for the card's value is the same cell as leaving it to the card."""
    ckpt, out = save_tiny(tmp_path / "tiny"), tmp_path / "run"
    run(config(ckpt, segmenter, SamplingSettings(steps=2), SamplingSettings(steps=2, guidance=2.0, eta=1.0)), out)
    assert sum(generated) == 2 and len(setting_folders(out)) == 1


def test_changed_weights_stop_before_sampling(tmp_path, segmenter, generated) -> None:
    from scdm.pipeline import load_pipeline

    ckpt, out = save_tiny(tmp_path / "tiny"), tmp_path / "run"
    cfg = config(ckpt, segmenter)
    run(cfg, out)
    old = load_pipeline(ckpt, device="cpu").digest
    save_tiny(ckpt, weight_seed=1)  # e.g. `scdm train --install` over the same checkpoint
    new = load_pipeline(ckpt, device="cpu").digest
    assert new != old
    before, made = pngs(out), sum(generated)
    with pytest.raises(ValueError, match=f"weights: {old} -> {new}.*use a new --out.*or delete that folder"):
        run(cfg, out)
    assert sum(generated) == made and pngs(out) == before
    for folder in setting_folders(out):  # the fix the message names
        shutil.rmtree(folder)
    run(cfg, out)
    assert sum(generated) == made + 2 and set(read_table(out).query("model == 'scdm'")["weights"]) == {new}


def test_empty_samplers_table_is_the_cards_sampler(tmp_path, segmenter, generated) -> None:
    from scdm.pipeline import load_pipeline

    ckpt = save_tiny(tmp_path / "tiny")
    path = tmp_path / "c.toml"
    path.write_text("[[samplers]]\n")
    cfg = load_config(path)
    assert cfg.samplers == (SamplingSettings(),)
    out = tmp_path / "run"
    run(config(ckpt, segmenter, *cfg.samplers, precision=None), out)
    card = load_pipeline(ckpt, device="cpu").card
    want = identity(resolve(card, None, "cpu"))
    assert want == {"sampler": "ddim", "steps": 3, "spacing": "sections", "guidance": 2.0, "extrapolation": 0.0,
                    "dynamic_threshold": 0.9, "eta": 1.0, "precision": "fp32", "label_diffusion": True}
    (folder,) = setting_folders(out)
    assert json.loads((folder / IDENTITY_NAME).read_text())["settings"] == want
    # the model's mode and the run's precision fill what the table leaves out
    run(config(ckpt, segmenter, *cfg.samplers, precision=Precision.BF16,
               models=(ModelSpec("scdm", str(ckpt), mode=Mode.SDM),)), out)
    (sdm,) = [f for f in setting_folders(out) if "_bf16-" in f.name]
    settings = json.loads((sdm / IDENTITY_NAME).read_text())["settings"]
    assert (settings["precision"], settings["label_diffusion"]) == ("bf16", False)


@pytest.mark.parametrize("body, match", [
    ('[[samplers]]\nsteps = "25"\n', r"samplers\[0\]\.steps: expected int or null, got str '25'$"),
    ('[[samplers]]\nsteps = 2.0\n', r"samplers\[0\]\.steps: expected int or null, got float 2\.0$"),
    ('[[samplers]]\nspacing = "even"\n', r"samplers\[0\]\.spacing: 'even' is not one of \['ddim', 'sections', 'quad'\]"),
    ('[[samplers]]\nsampler = "ddim"\nstep = 3\n', r"samplers\[0\]: unknown fields \['step'\]"),
    ('precision = "fp8"\n', r"precision: 'fp8' is not one of"),
])
def test_config_errors_name_the_field(tmp_path, body, match) -> None:
    path = tmp_path / "c.toml"
    path.write_text(body)
    with pytest.raises(ValueError, match=match):
        load_config(path)


def test_settings_the_device_cannot_run_fail_before_any_work(tmp_path, segmenter, generated, monkeypatch) -> None:
    import bench.run

    ckpt, out = save_tiny(tmp_path / "tiny"), tmp_path / "run"
    with monkeypatch.context() as m:  # checked before the dataset is read
        m.setattr(bench.run, "load_eval", lambda *a: pytest.fail("loaded the dataset"))
        with pytest.raises(ValueError, match=r"samplers\[0\]\.precision on cpu: precision 'fp16' needs a GPU"):
            run(config(ckpt, segmenter, SamplingSettings(steps=2, precision="fp16")), out)
        with pytest.raises(ValueError, match=r"^precision on cpu: precision 'fp16' needs a GPU"):
            run(config(ckpt, segmenter, precision=Precision.FP16), out)
    with pytest.raises(ValueError, match=r"model 'scdm', samplers\[1\]: steps must be in \[1, 1000\], got 2000"):
        run(config(ckpt, segmenter, SamplingSettings(steps=2), SamplingSettings(steps=2000)), out)
    with pytest.raises(ValueError, match=r"model 'scdm', samplers\[0\]: dynamic_threshold is a quantile"):
        run(config(ckpt, segmenter, SamplingSettings(steps=2, dynamic_threshold=1.5)), out)
    assert not generated and not (out / "samples").exists()


def test_older_run_folders_are_refused(tmp_path, segmenter, generated) -> None:
    """A folder from a bench that recorded no identities: its settings and weights are unknown, so it is refused."""
    from bench.store import write_png

    ckpt, out = save_tiny(tmp_path / "tiny"), tmp_path / "run"
    write_png(out / "samples" / "scdm" / "ancestral_2steps_g1.5" / "clean" / "0" / "s0" / "00000_0.png",
              torch.zeros(32, 32, 3, dtype=torch.uint8).numpy())
    with pytest.raises(ValueError, match=r"ancestral_2steps_g1\.5 has samples but no cell\.json.*use a new --out"):
        run(config(ckpt, segmenter), out)
    assert not generated


def test_robustness_finds_the_setting_folders_of_old_and_new_tables() -> None:
    from bench.report import DEFAULTS, REFERENCE_COLUMNS, SETTING
    from bench.robustness import table_setting_folder
    from bench.store import setting_folder

    resolved = resolve(ModelCard(), SamplingSettings(steps=2), "cpu")
    assert table_setting_folder(identity(resolved)) == setting_folder(resolved)
    assert table_setting_folder(dict(REFERENCE_COLUMNS)) == "none"
    old = {**{k: DEFAULTS.get(k) for k in SETTING}, "sampler": "ddim", "steps": 10, "guidance": 1.5, "eta": 1.0}
    assert table_setting_folder(old) == "ddim_10steps_g1.5_eta1"  # the folder name before identities
