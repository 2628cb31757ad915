"""A real-scale rehearsal of the paper run: bench/configs/paper_ade20k.toml on ADE20K-shaped files.

An ADEChallengeData2016 folder with maps at ADE20K's own sizes (raw ids 0..150, JPEG photos), an official-format
`model.pt` (a plain state dict with the official parameter names of the ADE20K preset's structure, narrowed
to 32 channels and 3 levels without attention for the CPU), converted with `python -m scdm convert` into an
SCDM and an SDM checkpoint, then `python -m bench run` with the paper config at 256 px. Overrides: the
checkpoint paths, 2 steps, 2 labels, 2 diversity samples, batch size 4, offline metrics and a tiny segmenter.
Every row of the table must be there: models x clean/ds/edge/random x metrics.
"""
from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.config import Precision, Sampler, load_config

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIGS = ("paper_ade20k.toml", "paper_celebamask_hq.toml", "paper_coco_stuff.toml")
ADE_SIZES = ((683, 512), (512, 683), (700, 525))  # (W, H) of ADE20K validation photos and annotations
HPARAMS = ("num_channels=32", "channel_mult=1,2,2", "num_res_blocks=1", "attention_resolutions=")
# offline; fd_effnetl0 is left out: one 1280 x 1280 eigendecomposition per cell is most of a CPU run's time
METRICS = ("kid_effnetl0", "feat_diversity", "miou", "miou_noisy")
STEPS = 2
QUIET = ["--quiet"]


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_use_the_reference_sampling_mode(name: str) -> None:
    cfg = load_config(ROOT / "bench" / "configs" / name)
    (s,) = cfg.samplers
    assert (s.sampler, s.steps, s.spacing.value, s.guidance) == (Sampler.ANCESTRAL, 25, "ddim", None)  # card: 1.5
    assert cfg.precision == Precision.AUTO_FP16 and cfg.dataset.resolution == 256
    assert cfg.dataset.reference.value == "eval"


def ade_label(w: int, h: int, shift: int) -> np.ndarray:
    """(h, w) uint8 raw ids 0..150 (0 = unlabeled) in 48-pixel blocks; 683 x 512 holds every id."""
    y, x = np.mgrid[0:h, 0:w]
    return ((x // 48 + (y // 48) * 15 + shift) % 151).astype(np.uint8)


def make_ade20k_folder(root: Path) -> Path:
    """ADE_val_0000000{1,2,3} and two training pairs at ADE20K sizes, JPEG photos and PNG annotations."""
    from test_reference_preprocessing import photo

    for split, prefix, n in (("validation", "ADE_val", 3), ("training", "ADE_train", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations" / split).mkdir(parents=True)
        for i in range(n):
            w, h = ADE_SIZES[i]
            name = f"{prefix}_{i + 1:08d}"
            Image.fromarray(photo(w, h)).save(root / "images" / split / f"{name}.jpg", quality=90)
            Image.fromarray(ade_label(w, h, 7 * i)).save(root / "annotations" / split / f"{name}.png")
    return root


def official_checkpoint(path: Path) -> Path:
    """An official-layout model.pt: the ADE20K preset's U-Net, narrowed as HPARAMS say, random weights."""
    from dataclasses import replace

    from scdm.presets import OFFICIAL_CARDS
    from scdm.unet import UNet

    unet = replace(OFFICIAL_CARDS["ade20k"]().unet, model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=1,
                   attention_ds=())
    torch.manual_seed(0)
    model = UNet(unet)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    torch.save(model.state_dict(), path)  # a plain state dict, as the official train loop saves it
    return path


def convert(pt: Path, out: Path, kappa: Path | None) -> Path:
    from scdm.__main__ import main

    args = ["convert", str(pt), str(out), "--preset", "ade20k"] + [a for h in HPARAMS for a in ("--hparam", h)]
    assert main(args + (["--kappa", str(kappa)] if kappa is not None else [])) == 0
    return out


def tiny_segmenter(path: Path) -> Path:
    from bench.segmenter import SegmenterConfig, build_model, save_segmenter

    cfg = SegmenterConfig(classes=tuple(range(1, 151)), class_names=(), model_size=None,
                          arch_kwargs={"decoder_channels": [8, 8, 8, 8, 8]})
    torch.manual_seed(0)
    return save_segmenter(path, build_model(cfg), cfg)


def test_paper_ade20k_rehearsal(tmp_path: Path) -> None:
    from bench.__main__ import main
    from bench.report import read_table

    t0 = time.time()
    root = make_ade20k_folder(tmp_path / "ADEChallengeData2016")
    pt = official_checkpoint(tmp_path / "model.pt")
    np.save(tmp_path / "ade20k_psiphi.npy", np.linspace(2.0, 60.0, 151))  # stands in for the published kappa
    sources = {"scdm-ade20k": convert(pt, tmp_path / "checkpoints/scdm-ade20k", tmp_path / "ade20k_psiphi.npy"),
               "sdm-ade20k": convert(pt, tmp_path / "checkpoints/sdm-ade20k", None)}
    config = tomllib.loads((ROOT / "bench/configs/paper_ade20k.toml").read_text())
    for m in config["models"]:
        if m["name"] in sources:
            m["source"] = str(sources.pop(m["name"]))
    assert not sources, f"the paper config lost models {sorted(sources)}"
    (tmp_path / "paper.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    assert main(["run", "--config", str(tmp_path / "paper.json"), "--out", str(out), "--root", str(root),
                 "--steps", str(STEPS), "--limit", "2", "--diversity-samples", "2", "--batch-size", "4",
                 "--metrics", *METRICS, "--segmenter", str(tiny_segmenter(tmp_path / "seg")),
                 "--device", "cpu"] + QUIET) == 0

    df = read_table(out)
    got = set(zip(df["model"], df["corruption"], df["metric"]))
    corrupted = ("ds", "edge", "random")
    want = set()
    for model in ("scdm-ade20k", "sdm-ade20k", "flat-paint"):
        want |= {(model, "clean", m) for m in ("kid_effnetl0", "miou")}
        want |= {(model, c, m) for c in corrupted for m in ("kid_effnetl0", "miou", "miou_noisy")}
    want |= {(m, "clean", "feat_diversity") for m in ("scdm-ade20k", "sdm-ade20k")}  # clean labels only
    want |= {("real", "clean", m) for m in ("kid_effnetl0", "miou")}
    assert got == want, f"missing {sorted(want - got)}, unexpected {sorted(got - want)}"
    assert len(df) == len(want) and df["value"].notna().all()
    diffusion = df[df["model"].isin(["scdm-ade20k", "sdm-ade20k"])]
    assert set(diffusion["steps"]) == {STEPS} and set(diffusion["guidance"]) == {1.5}  # the card's guidance
    assert set(diffusion["spacing"]) == {"ddim"} and set(diffusion["precision"]) == {"fp32"}  # auto-fp16 on a CPU
    assert set(zip(diffusion["model"], diffusion["label_diffusion"])) == {("scdm-ade20k", True), ("sdm-ade20k", False)}
    assert set(df["severity"][df["corruption"] == "ds"]) == {0.4}
    # DS came from the 683 x 512 annotation: 64 x 64 blocks of 4 x 4 pixels at 256 px
    ds = np.asarray(Image.open(out / "labels/ds/0.4/s0/00000.png"))
    assert ds.shape == (256, 256) and (ds.reshape(64, 4, 64, 4) == ds[::4, ::4][:, None, :, None]).all()
    print(f"paper rehearsal: {time.time() - t0:.0f} s")
