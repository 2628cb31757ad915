"""Command line: `python -m bench run|plot|compare` (argparse, progress bars and printing live here only).

    python -m bench run --out runs/bench                 # default: embedded world, SCDM vs SDM, DS/Edge/Random
    python -m bench run --config paper_ade20k.toml --out runs/ade20k
    python -m bench run --dataset labels --root my_maps --out runs/mine   # label maps alone, no photos
    python -m bench run --plugin mine=my_model.py:make --out runs/x      # your model next to the bundled pair
    torchrun --nproc_per_node 4 -m bench run ... --out runs/x   # shards images over processes
    python -m bench plot runs/bench                      # re-plot from metrics.parquet alone
    python -m bench compare runs/a runs/b                # value differences, row by row
    python -m bench robustness runs/bench                # mIoU drops of two models, paired bootstrap over labels
    python -m bench robustness runs/grid                 # + AUC, mCE, class sizes of a graded grid (robustness_grid.toml)
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

LAYOUTS = """dataset layouts (--root):
  ade20k         images/validation/*.jpg + annotations/validation/*.png (ADEChallengeData2016; train: training)
  celebamask_hq  test/images + test/labels (train: train/...)
  coco_stuff     val_img, val_label, val_inst (train: train_img, ...)
  cityscapes     leftImg8bit/val/<city>/*_leftImg8bit.png, gtFine/val/<city>/*_gtFine_{labelIds,instanceIds}.png
  folder         images/, labels/ (PNG, raw ids), optional instances/; training split in train/ (flat-paint, --reference train)
  labels         label maps alone (PNG: raw ids, palette or colour-coded), read in --encoding or the models' own;
                 no photos, so no fid/kid/fd rows and no real/flat-paint rows
"""


class Bars:
    """tqdm progress bars (with ETA) for bench.run.Events."""

    def __init__(self, quiet: bool = False):
        self.bar = None
        self.quiet = quiet

    def stage(self, name: str, total: int) -> None:
        from tqdm import tqdm

        self.close()
        if total and not self.quiet:
            self.bar = tqdm(total=total, desc=name, unit="img" if name.startswith("sampling") else "cell",
                            dynamic_ncols=True, file=sys.stderr)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def message(self, text: str) -> None:
        self.close()
        if not self.quiet:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _config(args: argparse.Namespace):
    """BenchConfig from --config plus the flags that were given."""
    from .config import (BenchConfig, CorruptionSpec, DatasetKind, Metric, Mode, ModelKind, ModelSpec, Precision,
                         Reference, load_config)

    cfg = load_config(args.config) if args.config else BenchConfig()
    ds = cfg.dataset
    for flag, field in (("dataset", "kind"), ("root", "root"), ("split", "split"), ("resolution", "resolution"),
                        ("world_scenes", "world_scenes"), ("reference", "reference"),
                        ("reference_images", "reference_images"), ("encoding", "encoding")):
        value = getattr(args, flag)
        if value is not None:
            conv = {"kind": DatasetKind, "reference": Reference, "encoding": DatasetKind}.get(field, lambda v: v)
            ds = replace(ds, **{field: conv(value)})
    cfg = replace(cfg, dataset=ds)
    if args.model:
        mode = Mode(args.mode)
        models = [ModelSpec(_model_name(s), s, ModelKind.DIFFUSION, mode) for s in args.model]
        cfg = replace(cfg, models=tuple(models) + tuple(m for m in cfg.models if m.kind != ModelKind.DIFFUSION))
    elif args.mode != "auto":
        cfg = replace(cfg, models=tuple(replace(m, mode=Mode(args.mode)) for m in cfg.models))
    if args.plugin:  # next to the config's diffusion models, replacing its plug-ins
        plugins = tuple(ModelSpec(*_plugin_name(p), ModelKind.PLUGIN) for p in args.plugin)
        keep = [m for m in cfg.models if m.kind != ModelKind.PLUGIN]
        cfg = replace(cfg, models=tuple(m for m in keep if m.kind.generative) + plugins
                      + tuple(m for m in keep if not m.kind.generative))
    if args.no_references:
        cfg = replace(cfg, models=tuple(m for m in cfg.models if m.kind.generative))
    if args.corruption is not None:
        sev = tuple(args.severities) if args.severities else None
        known = {c.kind: c for c in cfg.corruptions}
        cfg = replace(cfg, corruptions=tuple(
            CorruptionSpec(k, sev or (known[k].severities if k in known else (0.5,))) for k in args.corruption))
    elif args.severities:
        cfg = replace(cfg, corruptions=tuple(replace(c, severities=tuple(args.severities)) for c in cfg.corruptions))
    if args.no_clean:
        cfg = replace(cfg, clean=False)
    flags = {"sampler": args.sampler, "steps": args.steps, "spacing": args.spacing, "guidance": args.guidance,
             "eta": args.eta}
    if any(v is not None for v in flags.values()):  # one setting: the config's first with these fields replaced
        cfg = replace(cfg, samplers=(replace(cfg.samplers[0], **{k: v for k, v in flags.items() if v is not None}),))
    simple = {"seeds": tuple(args.seeds) if args.seeds else None, "limit": args.limit, "samples": args.samples,
              "diversity_samples": args.diversity_samples, "diversity_labels": args.diversity_labels,
              "segmenter": args.segmenter, "inception_weights": args.inception_weights,
              "lpips_backbone": args.lpips_backbone, "batch_size": args.batch_size, "device": args.device,
              "metrics": tuple(Metric(m) for m in args.metrics) if args.metrics else None,
              "precision": Precision(args.precision) if args.precision else None,
              "diversity_corrupted": True if args.diversity_corrupted else None}
    return replace(cfg, **{k: v for k, v in simple.items() if v is not None})


def _model_name(source: str) -> str:
    return Path(source).name or source


def _plugin_name(text: str) -> tuple[str, str]:
    """'NAME=ENTRY' or 'ENTRY' -> (name, entry point); the default name is the entry's module ('my_model')."""
    name, eq, entry = text.partition("=")
    if not eq:
        module = text.rpartition(":")[0]
        name, entry = Path(module).stem if module.endswith(".py") else module.rpartition(".")[2], text
    return name, entry


def _limit_threads(argv: list[str] | None) -> None:
    """Honour --threads before numpy and torch start their thread pools."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads")  # text: a bad value is left for the full parser to report
    threads = pre.parse_known_args(argv)[0].threads
    if threads and threads.isdigit() and int(threads) > 0:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)


def _run(args: argparse.Namespace) -> int:
    import torch

    from .run import run

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = _config(args)
    if args.dry_run:
        from .config import config_to_json, validate

        print(config_to_json(validate(cfg)))
        return 0
    bars = Bars(args.quiet or os.environ.get("RANK", "0") != "0")  # under torchrun, rank 0 shows the bars
    try:
        table = run(cfg, args.out, bars)
    finally:
        bars.close()
    if table is not None:
        print(f"report: {Path(args.out) / 'summary.md'}\ntable: {table}\nplots: {Path(args.out) / 'plots'}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from .plots import plot_all
    from .report import read_table

    df = read_table(args.run)
    out = Path(args.out) if args.out else (Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent) / "plots"
    for p in plot_all(df, out):
        print(p)
    return 0


def _compare(args: argparse.Namespace) -> int:
    import pandas as pd

    from .report import compare, read_table

    diff = compare(read_table(args.run_a), read_table(args.run_b))
    if args.metric:
        diff = diff[diff["metric"].isin(args.metric)]
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_columns", None):
        print(diff.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    only = diff["value_a"].isna().sum() + diff["value_b"].isna().sum()
    if only:
        print(f"\n{only} row(s) exist in only one run", file=sys.stderr)
    return 0


def _robustness(args: argparse.Namespace) -> int:
    import torch

    from .robustness import BootstrapConfig
    from .robustness_report import write_robustness

    if args.threads:
        torch.set_num_threads(args.threads)
    report = write_robustness(args.run, models=args.models, baseline=args.baseline, setting=args.setting,
                              config=BootstrapConfig(args.resamples, args.confidence), seed=args.seed,
                              device=args.device)
    print(report.text + f"\nwritten: {report.path}" + "".join(f"\nfigure: {p}" for p in report.figures))
    return 0


def main(argv: list[str] | None = None) -> int:
    _limit_threads(argv)
    from scdm.cli import ArgumentParser, run

    from .config import DatasetKind, Metric, Precision, Reference, Sampler, Spacing

    parser = ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="corrupt labels, sample, score, write the report", epilog=LAYOUTS,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--out", required=True, help="run folder (re-running into it resumes)")
    r.add_argument("--config", help="JSON or TOML file with BenchConfig fields; flags override it")
    g = r.add_argument_group("dataset")
    g.add_argument("--dataset", choices=[k.value for k in DatasetKind])
    g.add_argument("--root", help="dataset folder (not for the embedded world)")
    g.add_argument("--split", help="evaluated split (default: the layout's validation/test split)")
    g.add_argument("--resolution", type=int, help="image side after resizing (default 64)")
    g.add_argument("--world-scenes", type=int, help="embedded world: number of test scenes (default 50)")
    g.add_argument("--limit", type=int, help="use only the first N labels")
    g.add_argument("--reference", choices=[k.value for k in Reference],
                   help="FID/KID reference: train (independent draw; default) or eval (the papers' protocol)")
    g.add_argument("--reference-images", type=int, help="size of the train reference (default: as many as labels)")
    g.add_argument("--encoding", choices=[k.value for k in DatasetKind if k.has_photos and k != DatasetKind.FOLDER],
                   help="--dataset labels: the maps' label encoding (default: the models' cards, which must agree)")
    g = r.add_argument_group("models and sampling")
    g.add_argument("--model", action="append", help="load_pipeline source (checkpoint dir or bundled name); repeatable")
    g.add_argument("--mode", default="auto", choices=["auto", "scdm", "sdm"], help="Label Diffusion at generation")
    g.add_argument("--plugin", action="append", metavar="[NAME=]ENTRY",
                   help="your own model: 'package.module:factory' or 'path/to/file.py:factory' (protocol in "
                        "bench/plugin.py), added next to the other models; repeatable")
    g.add_argument("--no-references", action="store_true", help="drop the real and flat-paint rows")
    g.add_argument("--sampler", choices=[s.value for s in Sampler])
    g.add_argument("--steps", type=int, help="sampling steps (default 25)")
    g.add_argument("--spacing", choices=[s.value for s in Spacing], help="timestep spacing (default: the checkpoint's)")
    g.add_argument("--guidance", type=float, help="classifier-free guidance (default: the checkpoint's)")
    g.add_argument("--eta", type=float, help="DDIM stochasticity in [0, 1] (default: the checkpoint's; ddim only)")
    g.add_argument("--seeds", type=int, nargs="+", help="run seeds (error bars over seeds); default 0")
    g.add_argument("--samples", type=int, help="samples per label for FID/KID/mIoU (default 1)")
    g.add_argument("--diversity-samples", type=int, help="samples per label for diversity (default 3)")
    g.add_argument("--diversity-labels", type=int, help="labels with diversity samples (default 8; 0 = off)")
    g.add_argument("--diversity-corrupted", action="store_true", help="diversity samples on corrupted labels too")
    g.add_argument("--batch-size", type=int, help="images per generate() call")
    g.add_argument("--precision", choices=[p.value for p in Precision],
                   help="U-Net autocast of settings that give none (default: the checkpoint's; auto = bf16 where the "
                        "device has fast bf16, fp16 needs a GPU)")
    g.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
    g.add_argument("--threads", type=int, help="torch CPU threads")
    g = r.add_argument_group("corruptions")
    g.add_argument("--corruption", nargs="*", help="noise_sim kinds (default: ds edge random); empty = none")
    g.add_argument("--severities", type=float, nargs="+", help="severities in (0, 1] for the given corruptions")
    g.add_argument("--no-clean", action="store_true", help="skip clean labels")
    g = r.add_argument_group("metrics")
    g.add_argument("--metrics", nargs="+", choices=[m.value for m in Metric],
                   help="default: every metric whose weights are on this machine")
    g.add_argument("--segmenter", help="mIoU segmenter: 'embedded', a directory or an smp Hub id")
    g.add_argument("--inception-weights", help="torch-fidelity Inception weights (enables fid, kid)")
    g.add_argument("--lpips-backbone", help="torchvision AlexNet weights alexnet-owt-7be5be79.pth (enables lpips_diversity)")
    r.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(fn=_run)
    p = sub.add_parser("plot", help="re-draw the plots of a run from its table")
    p.add_argument("run", help="run folder or table file")
    p.add_argument("--out", help="plot folder (default RUN/plots)")
    p.set_defaults(fn=_plot)
    c = sub.add_parser("compare", help="print value differences between two runs")
    c.add_argument("run_a")
    c.add_argument("run_b")
    c.add_argument("--metric", nargs="+", help="only these metrics")
    c.set_defaults(fn=_compare)
    b = sub.add_parser("robustness", help="mIoU drop from clean labels of two models, with a paired bootstrap over "
                                          "labels; graded scores (AUC, mCE, class sizes) and a step-budget table "
                                          "where the run has them; writes RUN/robustness.md")
    b.add_argument("run", help="a finished run folder with clean and corrupted cells")
    b.add_argument("--models", nargs=2, metavar=("A", "B"),
                   help="model names (default: the run's first two diffusion models); delta = drop(B) - drop(A)")
    b.add_argument("--baseline", help="graded grid: the model CE is relative to (default: the one named like "
                                      "'...sdm', not 'scdm'; else B)")
    b.add_argument("--setting", help="sampler setting folder under RUN/samples/MODEL when a model has several")
    b.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    b.add_argument("--confidence", type=float, default=0.95, help="interval coverage (default 0.95)")
    b.add_argument("--seed", type=int, default=0, help="bootstrap generator seed")
    b.add_argument("--device", help="segmenter device (default cpu)")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.set_defaults(fn=_robustness)
    args = parser.parse_args(argv)
    return run(parser.prog, lambda: args.fn(args))  # a user error: one line on stderr, exit code 2


if __name__ == "__main__":
    sys.exit(main())
