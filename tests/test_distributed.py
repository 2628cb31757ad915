"""scdm.distributed: device choice per rank, errors before any work, two gloo processes (single writer, agreement),
and torchrun training equal to one process at the same global batch."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from scdm.distributed import pick_device, read_env, setup

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- device choice

@pytest.mark.parametrize("requested, local_rank, gpus, world, expected", [
    (None, 0, 0, 1, "cpu"),  # no GPU: the CPU
    (None, 1, 0, 2, "cpu"),  # gloo ranks on a CPU machine
    (None, 1, 2, 2, "cuda:1"),  # each rank its own GPU
    ("cuda", 1, 2, 2, "cuda:1"),
    ("cpu", 3, 2, 4, "cpu"),  # CPU asked for on a GPU machine
    ("cuda:1", 0, 2, 1, "cuda:1"),  # one process may pin a GPU
])
def test_pick_device(requested, local_rank, gpus, world, expected):
    assert pick_device(requested, local_rank, gpus, world) == torch.device(expected)


@pytest.mark.parametrize("requested, local_rank, gpus, world, message", [
    (None, 2, 2, 4, r"LOCAL_RANK=2 but only 2 GPU.*--nproc_per_node <= 2"),
    ("cuda", 0, 0, 1, r"'cuda' requested but no CUDA GPU.*'cpu'"),
    ("cuda:0", 0, 2, 2, r"all 2 ranks on one GPU.*'cuda'"),
    ("cuda:3", 0, 2, 1, r"only 2 GPU"),
    ("gpu", 0, 0, 1, r"unknown device 'gpu'"),
])
def test_pick_device_errors(requested, local_rank, gpus, world, message):
    with pytest.raises(ValueError, match=message):
        pick_device(requested, local_rank, gpus, world)


def test_read_env():
    assert read_env({}) == (0, 1, 0)
    assert read_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (3, 4, 1)
    with pytest.raises(ValueError, match="WORLD_SIZE='two' is not an integer"):
        read_env({"WORLD_SIZE": "two"})
    with pytest.raises(ValueError, match="RANK=2, WORLD_SIZE=2"):
        read_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_single_process_setup_is_a_no_op(monkeypatch):
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    with setup("cpu") as d:
        assert (d.rank, d.world_size, d.is_main, d.device, d.device_ids) == (0, 1, True, torch.device("cpu"), None)
        assert d.main_only(lambda: 7) == 7 and d.all_ok(True) and not d.all_ok(False) and d.all_gather("x") == ["x"]
        d.barrier()
    assert not torch.distributed.is_initialized()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            with setup("cuda"):
                pass


# ---------------------------------------------------------------------------------------------- two gloo processes

def _worker(rank: int, folder: str, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    path = Path(folder) / "written.txt"
    out = {}
    with setup("cpu") as d:
        out["place"] = [d.rank, d.world_size, d.is_main, str(d.device)]
        out["returned"] = d.main_only(lambda: path.write_text(f"by rank {d.rank}") and "written")
        out["seen_after"] = path.read_text()  # rank 1 reads what rank 0 wrote before it was let through
        out["all_ok_one_false"] = d.all_ok(d.rank == 0)
        out["all_ok_all_true"] = d.all_ok(True)
        out["gathered"] = d.all_gather(d.rank * 10)

        def fail():
            raise ValueError("rank 0's own error")
        try:
            d.main_only(fail)
        except Exception as e:  # noqa: BLE001 - recorded for the parent
            out["error"] = f"{type(e).__name__}: {e}"
        out["backend"] = torch.distributed.get_backend()
    out["closed"] = not torch.distributed.is_initialized()
    (Path(folder) / f"rank{rank}.json").write_text(json.dumps(out))


def test_two_gloo_processes_single_writer_and_agreement(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path), _free_port()), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["place"] == [0, 2, True, "cpu"] and r1["place"] == [1, 2, False, "cpu"]
    assert r0["returned"] == "written" and r1["returned"] is None
    assert r0["seen_after"] == r1["seen_after"] == "by rank 0"
    assert not r0["all_ok_one_false"] and not r1["all_ok_one_false"] and r0["all_ok_all_true"] and r1["all_ok_all_true"]
    assert r0["gathered"] == r1["gathered"] == [0, 10]
    assert r0["error"] == "ValueError: rank 0's own error" and r1["error"].startswith("RuntimeError: fail failed on rank 0")
    assert r0["backend"] == r1["backend"] == "gloo" and r0["closed"] and r1["closed"]


# ---------------------------------------------------------------------------------------------- training

TRAIN = dict(steps=3, batch_size=4, lr=1e-3, warmup_steps=0, save_every=3, log_every=1)  # lr large enough to tell runs apart

TORCHRUN_SCRIPT = """
import sys
from dataclasses import replace

import torch

from scdm.distributed import setup
from scdm.presets import get_preset
from scdm.train import TrainData, train
from scdm.world import WorldConfig, make_split

torch.set_num_threads(1)
d = make_split("train", 16, WorldConfig(size=32))
preset = get_preset("tiny-scdm")
with setup("cpu") as job:
    assert job.world_size == 2, job
    train(preset.card, replace(preset.train, **{cfg}), TrainData(d["labels"], d["images"], d["instances"]), sys.argv[1],
          device=job.device)
"""


@pytest.fixture
def one_thread():
    """Like the torchrun ranks (OMP_NUM_THREADS=1); also keeps these tests fast next to other CPU work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _single(out: Path, **kw) -> Path:
    from scdm.presets import get_preset
    from scdm.train import TrainData, train
    from scdm.world import WorldConfig, make_split

    d = make_split("train", 16, WorldConfig(size=32))
    preset = get_preset("tiny-scdm")
    return train(preset.card, replace(preset.train, **{**TRAIN, **kw}), TrainData(d["labels"], d["images"], d["instances"]),
                 out, device="cpu")


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _ema(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def test_torchrun_training_equals_one_process_at_the_same_global_batch(tmp_path, one_thread):
    script = tmp_path / "ddp_train.py"
    script.write_text(TORCHRUN_SCRIPT.replace("{cfg}", repr(TRAIN)))
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(script), str(tmp_path / "ddp")]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[:3000] + "\n...\n" + res.stderr[-3000:]
    _single(tmp_path / "single")
    from scdm.presets import get_preset
    from scdm.unet import UNet

    torch.manual_seed(0)
    init = UNet(get_preset("tiny-scdm").card.unet).state_dict()
    ddp, single = (torch.load(tmp_path / r / "train_state.pt", weights_only=True) for r in ("ddp", "single"))
    assert ddp["step"] == 3 and ddp["seen"] == 3 * TRAIN["batch_size"]
    ema_diff = _max_diff(_ema(tmp_path / "ddp"), _ema(tmp_path / "single"))  # measured 1.0e-7
    model_diff = _max_diff(ddp["model"], single["model"])
    moved = _max_diff(single["model"], init)  # what 3 steps change: ~3e-3 (lr 1e-3); rank-seeded noise shows at this scale
    assert ema_diff < 1e-5 and model_diff < 1e-5 and moved > 1e-3, (ema_diff, model_diff, moved)


def test_grad_accumulation_equals_one_batch(tmp_path, one_thread):
    """The same per-sample randomness however the global batch is split: 2 micro-batches of 2 == 1 batch of 4."""
    _single(tmp_path / "one", steps=2)
    _single(tmp_path / "accum", steps=2, grad_accum=2)
    assert _max_diff(_ema(tmp_path / "one"), _ema(tmp_path / "accum")) < 1e-5


# ---------------------------------------------------------------------------------------------- sample

def test_sample_shards_files_and_seeds_follow_the_file(tmp_path, one_thread):
    """`scdm sample` under torchrun (a.png, b.png on rank 0, a_bad.png on rank 1) writes for b.png what one process
    writes for b.png alone: image j of label file STEM is seeded from (seed, sha256(STEM)[:8] + j), not from its
    position or rank; rank 0 reports the files every rank skipped."""
    from PIL import Image

    from scdm.__main__ import main
    from scdm.checkpoint import save_checkpoint
    from scdm.presets import get_preset
    from scdm.seeds import name_index
    from scdm.unet import UNet
    from scdm.world import WorldConfig, make_split

    assert name_index("a") == int.from_bytes(__import__("hashlib").sha256(b"a").digest()[:8], "big")
    card = get_preset("tiny-scdm").card
    card = replace(card, label_diffusion=replace(card.label_diffusion, kappa=(2.0,) * card.labels.num_classes))
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ckpt", UNet(card.unet).state_dict(), card)
    labels = make_split("test", 2, WorldConfig(size=32))["labels"].astype(np.uint8)
    both, one = tmp_path / "both", tmp_path / "one"
    both.mkdir(), one.mkdir()
    Image.fromarray(labels[0]).save(both / "a.png")
    Image.fromarray(labels[1]).save(both / "b.png")
    Image.fromarray(labels[1]).save(one / "b.png")
    Image.new("RGB", (32, 32), (255, 255, 255)).save(both / "a_bad.png")  # white: no class colour; skipped on rank 1
    args = ["sample", "--checkpoint", str(tmp_path / "ckpt"), "--steps", "2", "--device", "cpu", "--precision", "fp32"]
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                          str(_free_port()), "-m", "scdm", *args, "--labels", str(both), "--out", str(tmp_path / "both_out")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and res.stderr.count("skipped a_bad.png") == 1 and res.stdout.count("wrote samples") == 1, res.stderr[-3000:]
    assert main([*args, "--labels", str(one), "--out", str(tmp_path / "one_out")]) == 0
    assert sorted(p.name for p in (tmp_path / "both_out").iterdir()) == ["a_0.png", "b_0.png"]
    a = np.asarray(Image.open(tmp_path / "both_out" / "b_0.png"))
    b = np.asarray(Image.open(tmp_path / "one_out" / "b_0.png"))
    assert np.array_equal(a, b)
