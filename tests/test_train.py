"""Training: loss goes down on a tiny model, resume continues identically, bad settings are refused, DDP on gloo."""
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scdm.config import Precision
from scdm.presets import get_preset
from scdm.train import STATE_NAME, TrainData, train
from scdm.world import WorldConfig, make_split

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data():
    d = make_split("train", 16, WorldConfig(size=32))
    return TrainData(d["labels"], d["images"], d["instances"])


def _cfg(steps):
    return replace(get_preset("tiny-scdm").train, steps=steps, batch_size=4, save_every=2, log_every=1)


def test_resume_is_identical_to_an_uninterrupted_run(tmp_path, data):
    card = get_preset("tiny-scdm").card
    train(card, _cfg(4), data, tmp_path / "straight", device="cpu")
    train(card, _cfg(2), data, tmp_path / "resumed", device="cpu")
    train(card, _cfg(4), data, tmp_path / "resumed", device="cpu")
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "resumed" / STATE_NAME).is_file()
    from scdm.pipeline import load_pipeline
    pipe = load_pipeline(tmp_path / "resumed")
    assert pipe.is_scdm and len(pipe.card.label_diffusion.kappa) == 12 and pipe.card.info["train_steps"] == 4


def test_loss_decreases(tmp_path, data):
    logs = []
    card = get_preset("tiny-scdm").card
    cfg = replace(_cfg(30), lr=2e-3, log_every=10, save_every=30)
    train(card, cfg, data, tmp_path / "run", device="cpu", on_log=logs.append)
    assert logs[-1]["loss"] < logs[0]["loss"] and logs[-1]["images_per_s"] > 0


def test_bad_settings(tmp_path, data):
    card = get_preset("tiny-scdm").card
    with pytest.raises(ValueError, match="divisible"):
        train(card, replace(_cfg(1), batch_size=3, grad_accum=2), data, tmp_path / "a", device="cpu")
    with pytest.raises(ValueError, match="bf16"):
        train(card, replace(_cfg(1), precision=Precision.FP16), data, tmp_path / "b", device="cpu")
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("huge")


def test_torchrun_two_gloo_processes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), SCDM_CACHE=str(tmp_path / "cache"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "scdm", "train", "--preset", "tiny-scdm", "--steps", "2", "--train-images", "16",
           "--out", str(tmp_path / "ddp"), "--threads", "1"]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "ddp" / "model.safetensors").is_file()
    state = torch.load(tmp_path / "ddp" / STATE_NAME, weights_only=True)
    assert state["step"] == 2 and state["seen"] == 2 * get_preset("tiny-scdm").train.batch_size


def test_continue_from_exported_weights_without_train_state(tmp_path, data):
    card = get_preset("tiny-scdm").card
    train(card, _cfg(2), data, tmp_path / "first", device="cpu")
    logs = []
    train(card, replace(_cfg(3), log_every=1), data, tmp_path / "second", device="cpu",
          init_from=tmp_path / "first", on_log=logs.append)
    assert [r["step"] for r in logs] == [3]  # continued at step 2, not from scratch
    state = torch.load(tmp_path / "second" / STATE_NAME, weights_only=True)
    assert state["step"] == 3


def test_cli_train_install_writes_the_presets_generation_defaults(tmp_path, monkeypatch):
    import scdm.pipeline
    from scdm.__main__ import main
    from scdm.checkpoint import read_card

    monkeypatch.setattr(scdm.pipeline, "BUNDLED_DIR", tmp_path / "weights")
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny-scdm", "--out", str(run), "--steps", "2", "--batch-size", "2",
                 "--train-images", "4", "--threads", "1", "--install"]) == 0
    installed = read_card(tmp_path / "weights" / "tiny-scdm")
    assert installed.sampler == get_preset("tiny-scdm").card.sampler and installed.info["train_steps"] == 2
    a, b = load_file(str(run / "model.safetensors")), load_file(str(tmp_path / "weights" / "tiny-scdm" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_learning_rate_warms_up_holds_then_decays_by_cosine():
    from scdm.config import TrainConfig
    from scdm.train import learning_rate

    cfg = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, decay_from=60, lr_min=1e-5)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4) and learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 59) == pytest.approx(1e-3) and learning_rate(cfg, 60) == pytest.approx(1e-3)
    assert learning_rate(cfg, 80) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)  # half way: the cosine's middle
    assert learning_rate(cfg, 100) == pytest.approx(1e-5)
    lrs = [learning_rate(cfg, s) for s in range(60, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert learning_rate(TrainConfig(steps=100, lr=2e-4), 99) == 2e-4  # no decay_from: constant


def test_cli_install_refuses_a_checkpoint_of_another_preset(tmp_path, monkeypatch, capsys):
    import scdm.pipeline
    from scdm.__main__ import main
    from scdm.checkpoint import read_card, read_weights, save_checkpoint
    from scdm.config import LabelDiffusionConfig, LabelSchedule
    from scdm.presets import check_card

    monkeypatch.setattr(scdm.pipeline, "BUNDLED_DIR", tmp_path / "weights")
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny-scdm", "--out", str(run), "--steps", "2", "--batch-size", "2",
            "--train-images", "4", "--threads", "1", "--install"]
    assert main(args) == 0
    installed = tmp_path / "weights" / "tiny-scdm" / "model.safetensors"
    before = installed.read_bytes()
    # the run folder now holds a model with another label schedule (e.g. an SDM run resumed under this name)
    card = read_card(run)
    save_checkpoint(run, read_weights(run), replace(card, label_diffusion=LabelDiffusionConfig(LabelSchedule.NONE)))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "not a tiny-scdm model" in err and "label schedule" in err
    assert installed.read_bytes() == before  # nothing installed
    check_card(card, "tiny-scdm")  # the preset's own card passes
    with pytest.raises(ValueError, match="name"):
        check_card(replace(card, name="embedded-sdm"), "tiny-scdm")
