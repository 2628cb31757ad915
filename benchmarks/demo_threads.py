"""How the demo's two models share a CPU: side by side or one after the other, threads of one process or a process each.

Times `demo.runner.generate_models` (the code path of the demo's live images and, without previews, of Refine) on
one 64 px label with the bundled models, in the three arrangements of README "Demo":

- threads of one process, side by side: this process at one torch thread per model, a Python thread per model;
- a process each, side by side: `demo.workers.RemotePipeline`s of `threads / 2` torch threads (`python -m demo`'s
  live images);
- one after the other, every thread each: the same worker processes at `threads` torch threads (Refine).

Live = one image per model with `demo.live.LIVE` (DDIM 4 steps); Refine = 4 images per model with the cards'
defaults. Each cell prints the range over `--repeats` runs after one warm-up. Run it with nothing else on the CPU.

    python -m benchmarks.demo_threads [--threads 2] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

import torch

import scdm
from demo.live import LIVE
from demo.runner import RunPlan, generate_models
from demo.settings import Request
from demo.workers import RemotePipeline

from .latency import scene

MODELS = ("embedded-scdm", "embedded-sdm")
LIVE_REQUEST = Request(num_samples=1, sampling=LIVE)
REFINE_REQUEST = Request()  # 4 images, every setting the card's


def timings(pipes: dict, request: Request, plan: RunPlan, repeats: int) -> tuple[list[float], dict[str, list[float]]]:
    """Wall seconds for all models, and each model's own seconds, over `repeats` runs after one warm-up."""
    label = scene()
    walls, own = [], {slot: [] for slot in pipes}
    for i in range(repeats + 1):
        start = time.perf_counter()
        results = generate_models(pipes, label, request, plan=plan)
        if i:
            walls.append(time.perf_counter() - start)
            for slot, result in results.items():
                own[slot].append(result.seconds)
    return walls, own


def span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2f} s" if f"{lo:.2f}" == f"{hi:.2f}" else f"{lo:.2f}-{hi:.2f} s"


def row(what: str, arrangement: str, walls: list[float], own: dict[str, list[float]]) -> str:
    models = ", ".join(f"{slot} {span(v)}" for slot, v in own.items())
    return f"| {what} | {arrangement} | {span(walls)} | {models} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2, help="the CPU's threads for the demo (python -m demo --threads)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    half = max(1, args.threads // len(MODELS))
    local = {name.removeprefix("embedded-").upper(): scdm.load_pipeline(name) for name in MODELS}
    print(f"{args.threads} threads; range of {args.repeats} runs after a warm-up; wall = until every model is done\n")
    print("| what | arrangement | wall | each model's own time |\n|---|---|---|---|")

    torch.set_num_threads(half)
    for what, request in (("live", LIVE_REQUEST), ("Refine", REFINE_REQUEST)):
        walls, own = timings(local, request, RunPlan(side_by_side=True), args.repeats)
        print(row(f"{what}, threads of one process, {half} torch thread(s) each", "side by side", walls, own), flush=True)
    for slot, pipe in local.items():
        walls, own = timings({slot: pipe}, REFINE_REQUEST, RunPlan(), args.repeats)
        print(row(f"Refine, {slot} alone, {half} torch thread(s)", "alone", walls, own), flush=True)

    remote = {slot: RemotePipeline(pipe, threads=half) for slot, pipe in local.items()}
    try:
        for what, request in (("live", LIVE_REQUEST), ("Refine", REFINE_REQUEST)):
            walls, own = timings(remote, request, RunPlan(side_by_side=True, threads=half), args.repeats)
            print(row(f"{what}, a process each, {half} torch thread(s) each", "side by side", walls, own), flush=True)
            walls, own = timings(remote, request, RunPlan(side_by_side=False, threads=args.threads), args.repeats)
            print(row(f"{what}, a process each, {args.threads} torch threads each", "one after the other", walls, own), flush=True)
    finally:
        for pipe in remote.values():
            pipe.close()


if __name__ == "__main__":
    main()
