"""Speed of every noise_sim kind on a batch of structured 256 x 256 label maps (ms per map).

    python -m benchmarks.noise_speed                      # 64 maps, all kinds, torch threads = CPU count
    python -m benchmarks.noise_speed --write-examples DIR # only save 4 example scenes as PNG label maps

Budgets (issue): <= 2 ms/map for ds, edge, random; <= 20 ms/map for every other kind (the human errors and
partial, blobs, warp, colour). Kinds with a ``dataset`` option run with "embedded" (the scenes' classes).
Maps are landscape-like scenes in the embedded world's ADE20K ids (sky, mountain, ground patches,
trees, buildings, rocks, flowers; ~10 classes each), drawn with a seeded generator.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import noise_sim  # noqa: E402

SKY, MOUNTAIN, TREE, BUILDING, ROCK, FLOWER = 3, 17, 5, 2, 35, 67
GROUND = (10, 30, 22, 47, 7, 12)  # grass, field, water, sand, road, sidewalk
BUDGET_MS = {k: 2.0 if k in noise_sim.PAPER_KINDS else 20.0 for k in noise_sim.KINDS}


def _wave(n: int, g: torch.Generator, scale: float) -> torch.Tensor:
    """A smooth random 1-D curve of n samples (sum of a few sines)."""
    x = torch.arange(n, dtype=torch.float32)
    out = torch.zeros(n)
    for k in (1, 2, 3, 5):
        phase = float(torch.rand(1, generator=g)) * 2 * math.pi
        out += scale / k * torch.sin(2 * math.pi * k * x / n + phase)
    return out


def make_scenes(n: int, size: int = 256, seed: int = 0) -> torch.Tensor:
    """n landscape-like label maps (n, size, size) int64 in embedded-world ids."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    rand = lambda *s: torch.rand(s, generator=g)  # noqa: E731
    scenes = []
    for _ in range(n):
        horizon = size * (0.35 + 0.15 * float(rand(1))) + _wave(size, g, size * 0.03)
        ridge = horizon - size * (0.08 + 0.12 * float(rand(1))) + _wave(size, g, size * 0.06)
        k = 7
        sy = horizon.mean() + rand(k) * (size - horizon.mean())
        sx = rand(k) * size
        cls = torch.tensor(GROUND)[torch.randint(0, len(GROUND), (k,), generator=g)]
        d = (yy[None] - sy.view(k, 1, 1)) ** 2 + (xx[None] - sx.view(k, 1, 1)) ** 2
        lab = cls[d.argmin(0)]
        lab = torch.where(yy < horizon.view(1, -1), torch.tensor(MOUNTAIN), lab)
        lab = torch.where(yy < ridge.view(1, -1), torch.tensor(SKY), lab)
        for cid, count, r_lo, r_hi in ((TREE, 5, 6, 22), (ROCK, 4, 3, 8), (FLOWER, 10, 1.5, 4)):
            for _ in range(count):
                cy = float(horizon.mean()) + float(rand(1)) * (size - float(horizon.mean()))
                cx, ry, rx = float(rand(1)) * size, *(r_lo + rand(2) * (r_hi - r_lo)).tolist()
                lab = torch.where(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1, torch.tensor(cid), lab)
        for _ in range(2):
            x0, wd, ht = float(rand(1)) * size, 10 + float(rand(1)) * 30, 15 + float(rand(1)) * 40
            base = float(horizon.mean()) + 10
            box = (xx >= x0) & (xx < x0 + wd) & (yy < base) & (yy >= base - ht)
            lab = torch.where(box, torch.tensor(BUILDING), lab)
        scenes.append(lab.long())
    return torch.stack(scenes)


def time_kind(maps: torch.Tensor, kind: str, severity: float, repeats: int) -> tuple[float, float]:
    """Best wall and process-CPU seconds per call over ``repeats`` runs (after one warm-up)."""
    extra = {"dataset": "embedded"} if "dataset" in noise_sim.get_kind(kind).options else {}
    run = lambda: noise_sim.corrupt(  # noqa: E731
        maps, kind, severity=severity, generator=torch.Generator().manual_seed(0), **extra
    )
    run()
    wall, cpu = math.inf, math.inf
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        run()
        wall, cpu = min(wall, time.perf_counter() - w0), min(cpu, time.process_time() - c0)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--severity", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kinds", nargs="+", default=list(noise_sim.KINDS))
    parser.add_argument("--write-examples", type=Path, help="save 4 example scenes here as PNG label maps, then exit")
    args = parser.parse_args()

    if args.write_examples:
        args.write_examples.mkdir(parents=True, exist_ok=True)
        for i, lab in enumerate(make_scenes(4, args.size, seed=1)):
            Image.fromarray(lab.numpy().astype(np.uint8)).save(args.write_examples / f"scene_{i}.png")
        print(f"wrote 4 scenes to {args.write_examples}")
        return
    torch.set_num_threads(args.threads)
    maps = make_scenes(args.batch, args.size)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# {args.batch} maps of {args.size}x{args.size}, torch threads {args.threads}, "
          f"load average {load:.1f}, torch {torch.__version__}")
    cols = " | ".join(f"s={s:g} wall | s={s:g} cpu" for s in args.severity)
    print(f"| kind | {cols} | budget |")
    print("|---" * (2 + 2 * len(args.severity)) + "|")
    for kind in args.kinds:
        cells = []
        for s in args.severity:
            wall, cpu = time_kind(maps, kind, s, args.repeats)
            cells += [f"{1000 * wall / args.batch:.2f}", f"{1000 * cpu / args.batch:.2f}"]
        print(f"| {kind} | " + " | ".join(cells) + f" | {BUDGET_MS[kind]:g} |", flush=True)


if __name__ == "__main__":
    main()
