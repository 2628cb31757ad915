"""Command line: `python -m scdm train|sample|convert ...` (argparse and printing live here only)."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from .cli import ArgumentParser, run
from .config import Precision, Spacing


def _train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .distributed import setup
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
    if args.lr is not None:
        cfg = replace(cfg, lr=args.lr)
    if args.decay_from is not None:
        cfg = replace(cfg, decay_from=args.decay_from)
    if args.lr_min is not None:
        cfg = replace(cfg, lr_min=args.lr_min)
    if args.precision:
        cfg = replace(cfg, precision=Precision(args.precision))
    out = Path(args.out or Path("runs") / args.preset)
    n = args.train_images or preset.train_images
    with setup(args.device) as job:  # ValueError for a bad device or LOCAL_RANK, before the data are made
        if job.is_main:
            print(f"making/loading {n} training scenes of the embedded world ...", file=sys.stderr)
        scenes = WorldConfig(size=preset.card.unet.image_size)
        split = job.main_only(load_or_make_split, "train", n, scenes)  # one rank makes the cache, the others read it
        if split is None:
            split = load_or_make_split("train", n, scenes)
        data = TrainData(labels=split["labels"], images=split["images"], instances=split["instances"])
        bar = tqdm(total=cfg.steps, desc=args.preset, dynamic_ncols=True, disable=not job.is_main)

        def on_log(rec: dict) -> None:  # train calls it on rank 0 only
            bar.n = rec["step"]
            bar.set_postfix(loss=f"{rec['loss']:.4f}", img_s=f"{rec['images_per_s']:.1f}")
            bar.refresh()
            if args.log:
                with open(args.log, "a") as f:
                    f.write(f"{rec['step']}\t{rec['loss']:.5f}\t{rec['images_per_s']:.2f}\t{rec['elapsed']:.0f}\n")

        try:
            init = args.init_from
            if init == "bundled":
                from .pipeline import BUNDLED_DIR
                init = BUNDLED_DIR / args.preset
            train(preset.card, cfg, data, out, device=job.device, init_from=init, on_log=on_log)
        finally:
            bar.close()
        if args.install:
            job.main_only(_install, out, args.preset, preset.card.sampler)
    if job.is_main:
        print(f"checkpoint: {out}")
    return 0


def _install(out: Path, preset: str, sampler) -> None:
    """Copy run `out`'s EMA checkpoint into scdm/weights/PRESET with the preset's current generation defaults."""
    from .checkpoint import read_card, read_weights, save_checkpoint
    from .pipeline import BUNDLED_DIR
    from .presets import check_card

    dest = BUNDLED_DIR / preset
    card = read_card(out)  # the run's card, with the preset's current generation defaults
    check_card(card, preset)  # ValueError before anything in scdm/weights is touched
    save_checkpoint(dest, read_weights(out), replace(card, sampler=sampler))
    print(f"installed {dest}")


def _read_label_png(path: Path, table):
    """An index PNG of raw ids, or a PNG colour-coded exactly in the model's palette; a guess is refused."""
    from .label_io import read_label

    decoded = read_label(path, table, blends=False)
    rep = decoded.colors
    if rep is not None and rep.exact + rep.transparent != rep.pixels:
        raise ValueError(f"{path}: not exactly in the model's palette ({rep.summary()}); save an index PNG of raw "
                         f"ids, or only the palette's colours")
    return decoded.ids


def _sample(args: argparse.Namespace) -> int:
    from PIL import Image
    from tqdm import tqdm

    from .distributed import setup
    from .files import atomic_write
    from .labels import ClassTable
    from .pipeline import load_pipeline
    from .seeds import image_seed, name_index

    files = sorted(p for p in Path(args.labels).glob("*.png"))
    if not files:
        raise ValueError(f"no .png label maps in {args.labels}")
    out = Path(args.out)
    if out.resolve() == Path(args.labels).resolve():
        raise ValueError("--out must differ from --labels")
    with setup(args.device) as job:  # under torchrun each rank samples files[rank::world]
        pipe = load_pipeline(args.checkpoint, device=job.device)
        table = ClassTable.from_spec(pipe.card.labels)
        out.mkdir(parents=True, exist_ok=True)
        failed = []
        for path in tqdm(files[job.rank::job.world_size], desc="sampling", disable=not job.is_main):
            targets = [out / f"{path.stem}_{j}.png" for j in range(args.num_samples)]
            if all(t.exists() for t in targets):
                continue
            try:
                label = _read_label_png(path, table)
            except (OSError, ValueError) as e:
                failed.append(f"{path.name}: {e}")
                continue
            # seeds follow the file's name, not its position or rank: other files and process counts change nothing
            seeds = [image_seed(args.seed, name_index(path.stem) + j) for j in range(args.num_samples)]
            imgs = pipe.generate(label[None], num_samples=args.num_samples, steps=args.steps, sampler=args.sampler,
                                 guidance=args.guidance, seed=seeds, label_diffusion=False if args.sdm_mode else None,
                                 precision=args.precision, eta=args.eta, spacing=args.spacing)
            for img, target in zip(imgs, targets):
                atomic_write(target, lambda tmp, img=img: Image.fromarray(img).save(tmp, format="PNG"))
        failed = sorted(line for lines in job.all_gather(failed) for line in lines)  # also waits for every rank
    if job.is_main:
        for line in failed:
            print(f"skipped {line}", file=sys.stderr)
        print(f"wrote samples to {out}")
    return 1 if failed else 0


def _convert(args: argparse.Namespace) -> int:
    from .official import convert_official

    hp = {}
    for item in args.hparam or []:
        key, _, value = item.partition("=")
        hp[key] = value if value.lower() not in ("true", "false") else value.lower() == "true"
    out = convert_official(args.checkpoint, args.out, preset=args.preset, kappa=args.kappa, **hp)
    print(f"converted {args.checkpoint} -> {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m scdm", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train (or resume) a preset on the embedded world")
    t.add_argument("--preset", required=True, help="embedded-scdm, embedded-sdm or tiny-scdm")
    t.add_argument("--out", help="run directory (default runs/PRESET); an existing run resumes")
    t.add_argument("--steps", type=int, help="total optimizer steps (overrides the preset)")
    t.add_argument("--batch-size", type=int, help="global batch per optimizer step")
    t.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step on each rank")
    t.add_argument("--lr", type=float, help="learning rate (overrides the preset)")
    t.add_argument("--decay-from", type=int, help="step where a cosine decay of the lr to --lr-min at --steps begins")
    t.add_argument("--lr-min", type=float, help="lr at the end of the cosine decay (default 0)")
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
    s.add_argument("--labels", required=True, help="folder of label PNGs: index maps of raw dataset ids, or colour-coded in the model's palette")
    s.add_argument("--out", required=True)
    s.add_argument("--num-samples", type=int, default=1)
    s.add_argument("--steps", type=int, help="sampler evaluations (default: the checkpoint's)")
    s.add_argument("--sampler", choices=["ancestral", "ddim", "dpmpp_2m"], help="default: the checkpoint's")
    s.add_argument("--guidance", type=float)
    s.add_argument("--eta", type=float, help="DDIM stochasticity, 0..1 (default: the checkpoint's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sdm-mode", action="store_true", help="turn Label Diffusion off")
    s.add_argument("--precision", choices=[p.value for p in Precision],
                   help="sampling autocast (default: the checkpoint's; fp16 needs a GPU)")
    s.add_argument("--spacing", choices=[p.value for p in Spacing],
                   help="timestep rule: ddim (the reference's ddimN) or sections (default: the checkpoint's)")
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
    return run(parser.prog, lambda: args.fn(args))  # a user error: one line on stderr, exit code 2


if __name__ == "__main__":
    sys.exit(main())
