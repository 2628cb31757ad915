"""Latency of 4 images from one 64 px label with the bundled models: library defaults and the demo's CPU path.

    python -m benchmarks.latency [--threads 2] [--repeats 3]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import scdm
from demo.classes import ClassTable
from demo.runner import Result, stream_generate
from demo.settings import Request

from .speed import time_call as median_seconds  # warm-up, then the median of `repeats` timings


def scene() -> np.ndarray:
    """A fixed sky / grass / water label (raw ADE20K ids)."""
    label = np.full((64, 64), 3, dtype=np.int64)
    label[32:] = 10
    label[40:, 10:30] = 22
    return label


def demo_seconds(pipe, label: np.ndarray) -> float:
    table = ClassTable.from_spec(pipe.card.labels)
    for event in stream_generate(pipe, label, Request(), table):  # the demo's defaults: the card's, 4 samples
        if isinstance(event, Result):
            return event.seconds
    raise RuntimeError("no result")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    label = scene()
    print(f"{args.threads} threads; median of {args.repeats}; seconds per 4 images\n")
    card = scdm.load_pipeline("embedded-scdm").card.sampler
    header = f"demo defaults (card: {card.sampler.value} {card.steps}), previews on"
    print(f"| model | generate() defaults | fp32 | DPM-Solver++ 12 | {header} |\n|---|---|---|---|---|")
    for name in ("embedded-scdm", "embedded-sdm"):
        pipe = scdm.load_pipeline(name)
        row = [median_seconds(lambda: pipe.generate(label[None], num_samples=4), args.repeats),
               median_seconds(lambda: pipe.generate(label[None], num_samples=4, precision="fp32"), args.repeats),
               median_seconds(lambda: pipe.generate(label[None], num_samples=4, sampler="dpmpp_2m", steps=12), args.repeats)]
        demo = [demo_seconds(pipe, label) for _ in range(args.repeats + 1)][1:]
        row.append(float(np.median(demo)))
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in row) + " |")


if __name__ == "__main__":
    main()
