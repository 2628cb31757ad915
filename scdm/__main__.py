"""Command line: `python -m scdm train|sample|convert ...` (argparse and printing live here only)."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path


def _train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .presets import get_preset
    from .train import TrainData, train
    from .world import WorldConfig, load_or_make_split

    preset = get_preset(args.preset)
    threads = args.threads or preset.threads
    if threads:
        torch.set_num_threads(threads)
    cfg = preset.train
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    if args.batch_size:
        cfg = replace(cfg, batch_size=args.batch_size)
    if args.grad_accum:
        cfg = replace(cfg, grad_accum=args.grad_accum)
    if args.precision:
        from .config import Precision
        cfg = replace(cfg, precision=Precision(args.precision))
    out = Path(args.out or Path("runs") / args.preset)
    n = args.train_images or preset.train_images
    print(f"making/loading {n} training scenes of the embedded world ...", file=sys.stderr)
    split = load_or_make_split("train", n, WorldConfig(size=preset.card.unet.image_size))
    data = TrainData(labels=split["labels"], images=split["images"], instances=split["instances"])
    bar = tqdm(total=cfg.steps, desc=args.preset, dynamic_ncols=True)

    def on_log(rec: dict) -> None:
        bar.n = rec["step"]
        bar.set_postfix(loss=f"{rec['loss']:.4f}", img_s=f"{rec['images_per_s']:.1f}")
        bar.refresh()
        if args.log:
            with open(args.log, "a") as f:
                f.write(f"{rec['step']}\t{rec['loss']:.5f}\t{rec['images_per_s']:.2f}\t{rec['elapsed']:.0f}\n")

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        init = args.init_from
        if init == "bundled":
            from .pipeline import BUNDLED_DIR
            init = BUNDLED_DIR / args.preset
        train(preset.card, cfg, data, out, device=args.device, init_from=init, on_log=on_log)
    finally:
        bar.close()
        if distributed:
            torch.distributed.destroy_process_group()
    if args.install:
        from .pipeline import BUNDLED_DIR
        from .checkpoint import read_card, read_weights, save_checkpoint

        dest = BUNDLED_DIR / args.preset
        card = read_card(out)  # the run's card, with the preset's current generation defaults
        save_checkpoint(dest, read_weights(out), replace(card, sampler=preset.card.sampler))
        print(f"installed {dest}")
    print(f"checkpoint: {out}")
    return 0


def _read_label_png(path: Path):
    import numpy as np
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"{path}: label maps must be single-channel index PNGs (mode L, P or I), got {im.mode}")
        return np.asarray(im).astype(np.int64)


def _sample(args: argparse.Namespace) -> int:
    from PIL import Image
    from tqdm import tqdm

    from .pipeline import image_seed, load_pipeline

    pipe = load_pipeline(args.checkpoint, device=args.device)
    files = sorted(p for p in Path(args.labels).glob("*.png"))
    if not files:
        raise ValueError(f"no .png label maps in {args.labels}")
    out = Path(args.out)
    if out.resolve() == Path(args.labels).resolve():
        raise ValueError("--out must differ from --labels")
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    for n, path in enumerate(tqdm(files, desc="sampling")):
        targets = [out / f"{path.stem}_{j}.png" for j in range(args.num_samples)]
        if all(t.exists() for t in targets):
            continue
        try:
            label = _read_label_png(path)
        except (OSError, ValueError) as e:
            failed.append(f"{path.name}: {e}")
            continue
        seeds = [image_seed(args.seed, n * args.num_samples + j) for j in range(args.num_samples)]
        imgs = pipe.generate(label[None], num_samples=args.num_samples, steps=args.steps, sampler=args.sampler,
                             guidance=args.guidance, seed=seeds, label_diffusion=not args.sdm_mode,
                             precision=args.precision, eta=args.eta)
        for img, target in zip(imgs, targets):
            tmp = target.with_name(f".{target.name}.tmp.png")
            Image.fromarray(img).save(tmp)
            os.replace(tmp, target)
    for line in failed:
        print(f"skipped {line}", file=sys.stderr)
    print(f"wrote samples to {out}")
    return 1 if failed else 0


def _convert(args: argparse.Namespace) -> int:
    from .official import convert_official

    hp = {}
    for item in args.hparam or []:
        key, _, value = item.partition("=")
        hp[key] = value if not value.lower() in ("true", "false") else value.lower() == "true"
    out = convert_official(args.checkpoint, args.out, preset=args.preset, kappa=args.kappa, **hp)
    print(f"converted {args.checkpoint} -> {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scdm", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) a preset on the embedded world")
    t.add_argument("--preset", required=True, help="embedded-scdm, embedded-sdm or tiny-scdm")
    t.add_argument("--out", help="run directory (default runs/PRESET); an existing run resumes")
    t.add_argument("--steps", type=int, help="total optimizer steps (overrides the preset)")
    t.add_argument("--batch-size", type=int, help="global batch per optimizer step")
    t.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step on each rank")
    t.add_argument("--precision", choices=["fp32", "bf16", "fp16"], help="autocast dtype (fp16: GPU only)")
    t.add_argument("--train-images", type=int, help="number of procedural training scenes")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--device")
    t.add_argument("--log", help="append step/loss/img_s lines to this file")
    t.add_argument("--init-from", help="checkpoint directory (or 'bundled') to continue from when OUT has no train_state.pt")
    t.add_argument("--install", action="store_true", help="copy the final EMA checkpoint into scdm/weights/PRESET")
    t.set_defaults(fn=_train)
    s = sub.add_parser("sample", help="generate images for a folder of index-PNG label maps")
    s.add_argument("--checkpoint", required=True, help="checkpoint directory or bundled name (embedded-scdm)")
    s.add_argument("--labels", required=True, help="folder of index PNGs with raw dataset ids")
    s.add_argument("--out", required=True)
    s.add_argument("--num-samples", type=int, default=1)
    s.add_argument("--steps", type=int, help="sampler evaluations (default: the checkpoint's)")
    s.add_argument("--sampler", choices=["ancestral", "ddim", "dpmpp_2m"], help="default: the checkpoint's")
    s.add_argument("--guidance", type=float)
    s.add_argument("--eta", type=float, help="DDIM stochasticity, 0..1 (default: the checkpoint's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sdm-mode", action="store_true", help="turn Label Diffusion off")
    s.add_argument("--precision", choices=["fp32", "bf16", "auto"], help="sampling autocast (default: the checkpoint's)")
    s.add_argument("--device")
    s.set_defaults(fn=_sample)
    c = sub.add_parser("convert", help="convert an official SDM/SCDM model.pt into a checkpoint directory")
    c.add_argument("checkpoint")
    c.add_argument("out")
    c.add_argument("--preset", choices=["ade20k", "celebamask_hq", "coco_stuff"])
    c.add_argument("--kappa", help="published per-class kappa .npy (e.g. ade20k_psiphi.npy) for SCDM")
    c.add_argument("--hparam", action="append", metavar="NAME=VALUE",
                   help="official CLI hyper-parameter, e.g. num_channels=128 or channel_mult=1,2,2,4")
    c.set_defaults(fn=_convert)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
