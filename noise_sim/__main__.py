"""Corrupt a folder of PNG label maps, or draw a preview grid.

    python -m noise_sim --labels DIR --out DIR --kind edge --severity 0.5 --seed 0 [--instances DIR] [--dataset ade20k]
    python -m noise_sim --labels DIR --out DIR --kind edge --seed 0          # the paper's Edge set (radius 2)
    python -m noise_sim --labels DIR --out DIR --kind ds --param factor=4    # natural parameters instead
    python -m noise_sim --labels DIR --preview docs/noise_preview.png        # clean vs every kind
    python -m noise_sim --list                                               # kinds, parameters, severity rules

Every file gets its own seed, `scdm.seeds.seed_for(seed, "corruption", name_index(relative path))`, so a
file's result does not depend on which other files are in the folder. Unreadable files are reported by name
and skipped; the manifest (``manifest.json`` in --out) lists them. Exit status 1 if any file failed, 2 for a
user error (a bad flag, value or folder: one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from scdm.label_io import read_index_png, write_index_png
from scdm.cli import ArgumentParser, run
from scdm.seeds import name_index, seed_for

from . import __version__
from .preview import preview_grid
from .registry import KINDS, REGISTRY, changed_fraction, corrupt, get_kind, resolve_params

MANIFEST = "manifest.json"


def parse_param(text: str) -> tuple[str, Any]:
    """'name=value' -> (name, value); the value is read as JSON when it parses, else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--param takes NAME=VALUE, got {text!r}")
    name, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return name.strip(), value


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = ArgumentParser(prog="python -m noise_sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=Path, help="folder of PNG label maps (searched recursively)")
    p.add_argument("--out", type=Path, help="output folder (never the input folder)")
    p.add_argument("--kind", choices=KINDS, help="corruption kind")
    p.add_argument("--severity", type=float, help="severity in [0, 1] (instead of --param)")
    p.add_argument("--param", type=parse_param, action="append", default=[], metavar="NAME=VALUE",
                   help="natural parameter or option of the kind, repeatable")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--instances", type=Path, help="folder of instance maps with the same relative paths")
    p.add_argument("--dataset", help="for kinds that take one: confusion table (ade20k, embedded), colour palette")
    p.add_argument("--unlabeled", type=int, default=0, help="id written for removed labels (ADE20K: 0)")
    p.add_argument("--preview", type=Path, help="write a PNG grid: first map, clean vs every kind")
    p.add_argument("--preview-severities", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    p.add_argument("--preview-kinds", nargs="+", choices=KINDS, default=list(KINDS), metavar="KIND",
                   help="rows of the preview grid (default: every kind)")
    p.add_argument("--list", action="store_true", help="list the kinds and exit")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: maps are small, and extra threads only contend)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def list_kinds() -> None:
    """Print every kind with its defaults, options and severity rule."""
    for kind in REGISTRY.values():
        print(f"{kind.name:11s} {kind.summary}")
        print(f"{'':11s}   defaults {dict(kind.defaults)}; options {dict(kind.options)}")
        print(f"{'':11s}   severity: {kind.severity_rule}")


def label_files(root: Path) -> list[Path]:
    """All PNG files under root, sorted by relative path."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".png")


def check_folders(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse to write into (or under) an input folder."""
    if not args.labels.is_dir():
        parser.error(f"--labels {args.labels} is not a folder")
    if args.instances is not None and not args.instances.is_dir():
        parser.error(f"--instances {args.instances} is not a folder")
    if args.out is None:
        return
    out = args.out.resolve()
    for name, folder in (("--labels", args.labels), ("--instances", args.instances)):
        if folder is not None and (out == folder.resolve() or folder.resolve() in out.parents):
            parser.error(f"--out must be outside {name} ({folder}); noise_sim never overwrites its input")


def corrupt_folder(args: argparse.Namespace, params: dict[str, Any]) -> int:
    """Corrupt every label map, write outputs and the manifest; return the number of failed files."""
    files = label_files(args.labels)
    resolved = resolve_params(args.kind, args.severity, **params)
    done, failed = [], []
    for path in tqdm(files, desc=f"noise_sim {args.kind}", unit="map", disable=args.quiet):
        name = path.relative_to(args.labels).as_posix()
        try:
            source = read_index_png(path)
            labels = torch.from_numpy(source.ids)
            inst = None
            if args.instances is not None:
                inst_path = args.instances / name
                if not inst_path.is_file():
                    raise ValueError(f"no instance map {inst_path}")
                inst = torch.from_numpy(read_index_png(inst_path).ids)
            seed = seed_for(args.seed, "corruption", name_index(name))  # scdm.seeds: label `name` of the folder
            noisy = corrupt(labels, args.kind, severity=args.severity, instances=inst, unlabeled=args.unlabeled,
                            generator=torch.Generator().manual_seed(seed), **params)
            write_index_png(args.out / name, noisy.numpy(), like=source)
        except (OSError, ValueError, SyntaxError) as err:  # PIL reports broken files as OSError/SyntaxError
            failed.append({"name": name, "error": str(err)})
            tqdm.write(f"noise_sim: skipped {name}: {err}", file=sys.stderr)
            continue
        done.append({"name": name, "changed_fraction": round(float(changed_fraction(labels, noisy)), 6)})
    fractions = [d["changed_fraction"] for d in done]
    manifest = {
        "noise_sim_version": __version__,
        "kind": args.kind,
        "severity": args.severity,
        "params": resolved,
        "seed": args.seed,
        "seeding": "per file: torch.Generator().manual_seed(scdm.seeds.seed_for(seed, 'corruption', "
                   "scdm.seeds.name_index(name)))",
        "unlabeled": args.unlabeled,
        "labels": str(args.labels),
        "instances": None if args.instances is None else str(args.instances),
        "mean_changed_fraction": sum(fractions) / len(fractions) if fractions else None,
        "files": done,
        "failed": failed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    mean = "n/a" if not fractions else f"{manifest['mean_changed_fraction']:.4f}"
    print(f"noise_sim: wrote {len(done)} maps to {args.out} (mean changed fraction {mean}); {len(failed)} failed")
    return len(failed)


def write_preview(args: argparse.Namespace) -> None:
    """Preview grid from the first readable label map of --labels."""
    for path in label_files(args.labels):
        try:
            source = read_index_png(path)
            inst = None
            if args.instances is not None and (args.instances / path.relative_to(args.labels)).is_file():
                inst = torch.from_numpy(read_index_png(args.instances / path.relative_to(args.labels)).ids)
        except (OSError, ValueError, SyntaxError) as err:
            print(f"noise_sim: skipped {path}: {err}", file=sys.stderr)
            continue
        grid = preview_grid(torch.from_numpy(source.ids), kinds=args.preview_kinds, severities=args.preview_severities,
                            generator=torch.Generator().manual_seed(args.seed), instances=inst,
                            unlabeled=args.unlabeled, dataset=args.dataset)
        args.preview.parent.mkdir(parents=True, exist_ok=True)
        grid.save(args.preview, optimize=True)
        print(f"noise_sim: wrote preview of {path.name} to {args.preview}")
        return
    raise ValueError(f"no readable PNG label map in {args.labels}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (a user error: one line on stderr and 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(parser.prog, lambda: _main(parser, args))


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.list:
        list_kinds()
        return 0
    if args.labels is None or (args.out is None and args.preview is None):
        parser.error("give --labels and --out (with --kind), or --labels and --preview")
    if args.out is not None and args.kind is None:
        parser.error("--out needs --kind")
    check_folders(parser, args)
    torch.set_num_threads(max(1, args.threads))
    params = dict(args.param)
    if args.dataset is not None:
        if args.kind is not None and "dataset" in get_kind(args.kind).options:
            params["dataset"] = args.dataset
    if args.out is not None:
        try:  # a dry run on a tiny map: bad names or values fail before any file is read
            corrupt(torch.zeros(4, 4, dtype=torch.long), args.kind, severity=args.severity, **params)
        except ValueError as err:
            parser.error(str(err))
    if args.preview is not None:
        write_preview(args)
    return 1 if args.out is not None and corrupt_folder(args, params) else 0


if __name__ == "__main__":
    sys.exit(main())
