"""Sampling the models for the UI: worker threads run `Pipeline.generate`, their callbacks stream previews.

`stream_models` samples every model side by side, one worker thread each, or one after the other (`RunPlan`; on a
CPU `python -m demo` runs Refine one model after the other with every thread, each model in its own process,
`workers.RemotePipeline`), and yields `(slot, Preview)` (x̂_0 and the diffused label y_t of every sample, at most
one per model every `min_interval` seconds) and `(slot, Result)` as each model finishes; `stream_generate` is the
same for one model. Closing the iterator early (the browser left) stops the samplers at their next step.
`generate_models` is the live path: no previews, a `stop()` check at every step. `estimate_seconds` predicts a
generation's wall time from one timed forward.
"""
from __future__ import annotations

import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from scdm.guidance import is_guided
from scdm.labels import class_ids, fill_id
from scdm.pipeline import Pipeline
from scdm.precision import autocast_dtype
from scdm.samplers import StepInfo
from scdm.seeds import seed_for
from scdm.settings import SamplingSettings

from .classes import ClassTable
from .settings import Request
from .views import onehot_view, x0_preview


@dataclass(frozen=True)
class Preview:
    """One streamed sampler step."""

    step: int  # 0-based evaluation index
    num_steps: int
    t: int  # original 1000-step timestep
    x0: np.ndarray  # (N, H, W, 3) uint8 x̂_0 of every sample
    y_t: np.ndarray | None  # (N, H, W, 3) uint8 colour view of y_t, [MASK] pixels as a checkerboard


@dataclass(frozen=True)
class Result:
    """The finished images of one model."""

    images: np.ndarray  # (N, H, W, 3) uint8
    seconds: float  # wall time of `Pipeline.generate`


@dataclass(frozen=True)
class Inpaint:
    """Semantic editing inputs (SDM Eq. 12): keep `image` where `mask` is 0."""

    image: np.ndarray  # (H, W, 3) uint8 known image
    mask: np.ndarray  # (H, W) 1 = regenerate


@dataclass(frozen=True)
class Started:
    """A model begins sampling (one after the other, the second starts when the first is done)."""


@dataclass(frozen=True)
class RunPlan:
    """How the models of one request share the CPU: side by side (a worker thread each) or one after the other,
    and the torch threads each call gets (None: the process's own; a number needs `workers.RemotePipeline`s,
    whose processes each have their own thread count)."""

    side_by_side: bool = True
    threads: int | None = None


class Cancelled(Exception):
    """Raised inside the sampler callback when the consumer has gone away."""


def channel_ids(pipe: Pipeline) -> tuple[int, ...]:
    """Raw id of each one-hot channel of a model."""
    return class_ids(pipe.card.labels)


# model -> {(device, autocast dtype, labels per image, images): seconds of one forward}; weak, so unloading frees it
_FORWARD_SECONDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.no_grad()
def forward_seconds(pipe: Pipeline, settings: SamplingSettings, num_samples: int = 1) -> float:
    """Wall time of one denoiser evaluation for a batch of `num_samples` images (label context + U-Net, guided rows
    included) under the resolved `settings`; timed once per model, device, precision, guidance mode and batch
    (after one untimed forward: the first pays one-time setup), then cached."""
    guided = is_guided(settings.guidance)
    dtype = autocast_dtype(settings.precision, pipe.device)
    key = (str(pipe.device), dtype, 2 if guided else 1, num_samples)
    cache = _FORWARD_SECONDS.setdefault(pipe.model, {})
    if key not in cache:
        size = pipe.card.unet.image_size
        y = pipe.encode(np.full((1, size, size), fill_id(pipe.card.labels), np.int64))  # (1, C, H, W)
        y = y.repeat(num_samples, 1, 1, 1)
        x = torch.zeros((num_samples, 3, size, size), device=pipe.device)
        t = torch.full((num_samples,), pipe.card.diffusion.num_timesteps // 2, device=pipe.device)
        if guided:
            y = torch.cat([y, torch.zeros_like(y)])
            null = torch.arange(2 * num_samples, device=pipe.device) >= num_samples
        for timed in (False, True):
            if pipe.device.type == "cuda":
                torch.cuda.synchronize(pipe.device)
            start = time.perf_counter()
            ctx = pipe.model.label_context(y, null) if guided else pipe.model.label_context(y)
            with torch.autocast(pipe.device.type, dtype=dtype, enabled=dtype is not None):
                pipe.model(x, t, ctx, labels_per_image=key[2])
            if pipe.device.type == "cuda":
                torch.cuda.synchronize(pipe.device)
        cache[key] = time.perf_counter() - start
    return cache[key]


def estimate_seconds(pipe: Pipeline, settings: SamplingSettings, num_samples: int) -> float:
    """Expected wall time of `num_samples` images under resolved `settings`: steps x one forward of the whole batch
    (the pipeline samples them as one batch; on a CPU a batch of 4 costs far less than 4 single images)."""
    return forward_seconds(pipe, settings, num_samples) * settings.steps


def generate(pipe: Pipeline, label: np.ndarray, request: Request, inpaint: Inpaint | None = None) -> Result:
    """Images for one (H, W) label without previews (the API path)."""
    start = time.perf_counter()
    images = pipe.generate(label[None], **_generate_kwargs(request, inpaint))
    return Result(images, time.perf_counter() - start)


def _generate_kwargs(request: Request, inpaint: Inpaint | None, plan: RunPlan = RunPlan()) -> dict:
    """`Pipeline.generate` arguments besides the labels: only the settings that were set, the card does the rest."""
    seeds = [seed_for(request.seed, "sample", 0, j) for j in range(request.num_samples)]  # the bench's label 0
    kw = {"num_samples": request.num_samples, "seed": seeds, "settings": request.sampling}
    if plan.threads is not None:
        kw["threads"] = plan.threads
    if inpaint is not None:
        kw.update(inpaint_image=inpaint.image[None], inpaint_mask=inpaint.mask[None])
    return kw


def generate_models(pipes: dict[str, Pipeline], label: np.ndarray, request: Request, *,
                    stop: Callable[[], bool] | None = None, plan: RunPlan = RunPlan()) -> dict[str, Result] | None:
    """`generate` for several models, by default side by side, one worker thread each (the live path: no previews).

    `stop()` is asked at every sampler step of every model; once it is true the run ends early and returns None.
    """
    halt = threading.Event()

    def callback(_: StepInfo) -> None:
        if halt.is_set() or (stop is not None and stop()):
            halt.set()
            raise Cancelled()

    results: dict[str, Result | BaseException] = {}

    def work(*items: tuple[str, Pipeline]) -> None:
        for slot, pipe in items:
            start = time.perf_counter()
            try:
                images = pipe.generate(label[None], **_generate_kwargs(request, None, plan), callback=callback)
                results[slot] = Result(images, time.perf_counter() - start)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                results[slot] = e
                return

    groups = [[item] for item in pipes.items()] if plan.side_by_side else [list(pipes.items())]
    workers = [threading.Thread(target=work, args=group, name=f"scdm-demo-live-{group[0][0]}", daemon=True)
               for group in groups]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if halt.is_set():
        return None
    for r in results.values():
        if isinstance(r, BaseException):
            raise r
    return {slot: results[slot] for slot in pipes}  # type: ignore[misc]


def stream_models(pipes: dict[str, Pipeline], label: np.ndarray, request: Request, table: ClassTable, *,
                  inpaint: Inpaint | None = None, min_interval: float = 0.2,
                  plan: RunPlan = RunPlan()) -> Iterator[tuple[str, Started | Preview | Result]]:
    """(slot, Started) as each model begins, (slot, Preview) while it samples `label` and (slot, Result) when it
    is done: side by side, one worker thread each, or one after the other in `pipes`' order (`plan`); at most one
    preview per model every `min_interval` s (the newest step, stale ones are dropped). A sampler error is
    re-raised here; closing the iterator stops every model at its next step (and starts no other)."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    n = request.num_samples

    def run(slot: str, pipe: Pipeline) -> bool:
        ids = channel_ids(pipe)
        built = [float("-inf")]  # when the last preview was built: previews cost time, so one per interval

        def callback(info: StepInfo) -> None:
            if stop.is_set():
                raise Cancelled()
            now = time.perf_counter()
            if now - built[0] < min_interval:
                return
            built[0] = now
            y = None if info.y_t is None else np.stack([onehot_view(info.y_t[i], table, ids) for i in range(n)])
            events.put((slot, Preview(info.step, info.num_steps, info.t, x0_preview(info.x0[:n]), y)))

        events.put((slot, Started()))
        t0 = time.perf_counter()
        try:
            images = pipe.generate(label[None], **_generate_kwargs(request, inpaint, plan), callback=callback)
            events.put((slot, Result(images, time.perf_counter() - t0)))
            return True
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            events.put((slot, e))
            return False

    def work(*items: tuple[str, Pipeline]) -> None:
        for slot, pipe in items:
            if stop.is_set() or not run(slot, pipe):
                return

    groups = [[item] for item in pipes.items()] if plan.side_by_side else [list(pipes.items())]
    workers = [threading.Thread(target=work, args=group, name=f"scdm-demo-sampler-{group[0][0]}".rstrip("-"),
                                daemon=True) for group in groups]
    for w in workers:
        w.start()
    pending, last = set(pipes), dict.fromkeys(pipes, 0.0)
    try:
        while pending:
            batch = [events.get()]
            while not events.empty():
                batch.append(events.get_nowait())
            newest = {slot: i for i, (slot, item) in enumerate(batch) if isinstance(item, Preview)}
            for i, (slot, item) in enumerate(batch):
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Result):
                    pending.discard(slot)
                    yield slot, item
                elif isinstance(item, Started):
                    yield slot, item
                elif newest[slot] == i and time.perf_counter() - last[slot] >= min_interval:
                    last[slot] = time.perf_counter()
                    yield slot, item
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)


def stream_generate(pipe: Pipeline, label: np.ndarray, request: Request, table: ClassTable, *,
                    inpaint: Inpaint | None = None, min_interval: float = 0.2) -> Iterator[Preview | Result]:
    """Previews while `pipe` samples `label`, then the `Result`; sampler errors are re-raised here."""
    for _, event in stream_models({"": pipe}, label, request, table, inpaint=inpaint, min_interval=min_interval):
        if not isinstance(event, Started):
            yield event
