"""CLI: `python -m scdm.world preview --out docs/world_preview.png` and `python -m scdm.world stats --n 2000`."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from PIL import Image

from ..cli import ArgumentParser, run
from .classes import CLASSES, label_to_color
from .dataset import WorldConfig, make_split


def instance_to_color(instances: np.ndarray) -> np.ndarray:
    """Colour-code instance ids with a fixed pseudo-random palette (0 stays black)."""
    lut = np.random.default_rng(12345).integers(60, 256, (int(instances.max()) + 1, 3)).astype(np.uint8)
    lut[0] = 0
    return lut[instances]


def preview_grid(data: dict[str, np.ndarray], zoom: int = 3, gap: int = 2) -> np.ndarray:
    """Rows image / colour-coded label / instances, one column per scene, upscaled by `zoom`."""
    rows = [data["images"], np.stack([label_to_color(x) for x in data["labels"]]),
            np.stack([instance_to_color(x) for x in data["instances"]])]
    n, s = data["labels"].shape[:2]
    cell = s * zoom + gap
    grid = np.full((3 * cell + gap, n * cell + gap, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for k in range(n):
            tile = row[k].repeat(zoom, 0).repeat(zoom, 1)
            grid[gap + r * cell: gap + r * cell + s * zoom, gap + k * cell: gap + k * cell + s * zoom] = tile
    return grid


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run preview or stats; a user error is one line on stderr and exit code 2."""
    parser = ArgumentParser(prog="python -m scdm.world", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    pv = sub.add_parser("preview", help="write a PNG grid of images, labels and instances")
    pv.add_argument("--out", default="docs/world_preview.png")
    pv.add_argument("--n", type=int, default=8)
    pv.add_argument("--size", type=int, default=64)
    pv.add_argument("--split", choices=["train", "test"], default="test")
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--start", type=int, default=0)
    st = sub.add_parser("stats", help="print per-class presence rate and mean area fraction")
    st.add_argument("--n", type=int, default=2000)
    st.add_argument("--size", type=int, default=64)
    st.add_argument("--split", choices=["train", "test"], default="train")
    st.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    return run(parser.prog, lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    config = WorldConfig(size=args.size, seed=args.seed)
    if args.cmd == "preview":
        data = make_split(args.split, args.n, config, start=args.start)
        Image.fromarray(preview_grid(data)).save(args.out, optimize=True)
        print(f"wrote {args.out}")
        return 0
    t0, c0 = time.perf_counter(), time.process_time()
    labels = make_split(args.split, args.n, config)["labels"]
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    counts = np.stack([np.bincount(x.ravel(), minlength=256) for x in labels])  # (n, 256)
    area = counts / float(labels.shape[1] * labels.shape[2])
    rate = f"{args.n / dt:.0f} scenes/s wall, {args.n / cpu:.0f} per CPU second"
    print(f"{args.n} {args.split} scenes at {args.size}px: {rate}")
    print(f"{'class':<10}{'id':>4}{'presence':>10}{'mean area':>11}{'area|present':>14}")
    for c in CLASSES:
        present = counts[:, c.id] > 0
        cond = area[present, c.id].mean() if present.any() else 0.0
        print(f"{c.name:<10}{c.id:>4}{present.mean():>10.3f}{area[:, c.id].mean():>11.4f}{cond:>14.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
