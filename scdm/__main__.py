"""Command line: `python -m scdm train|sample|convert ...` (argparse and printing live here only)."""
from __future__ import annotations

import argparse
import os
import shutil
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
        train(preset.card, cfg, data, out, device=args.device, on_log=on_log)
    finally:
        bar.close()
        if distributed:
            torch.distributed.destroy_process_group()
    if args.install:
        from .pipeline import BUNDLED_DIR
        dest = BUNDLED_DIR / args.preset
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "config.json"):
            shutil.copyfile(out / name, dest / f".{name}.tmp")
            os.replace(dest / f".{name}.tmp", dest / name)
        print(f"installed {dest}")
    print(f"checkpoint: {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scdm", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) a preset on the embedded world")
    t.add_argument("--preset", required=True, help="embedded-scdm, embedded-sdm or tiny-scdm")
    t.add_argument("--out", help="run directory (default runs/PRESET); an existing run resumes")
    t.add_argument("--steps", type=int, help="total optimizer steps (overrides the preset)")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--train-images", type=int, help="number of procedural training scenes")
    t.add_argument("--threads", type=int, help="torch CPU threads")
    t.add_argument("--device")
    t.add_argument("--log", help="append step/loss/img_s lines to this file")
    t.add_argument("--install", action="store_true", help="copy the final EMA checkpoint into scdm/weights/PRESET")
    t.set_defaults(fn=_train)
    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
