"""Sampling one model for the UI: a worker thread runs `Pipeline.generate`, its callback streams previews.

`stream_generate` yields `Preview`s (x̂_0 and the diffused label y_t of every sample, at most one per
`min_interval` seconds) and finally one `Result`. Closing the iterator early (the browser left) stops the
sampler at its next step. `estimate_seconds` predicts a generation's wall time from one timed forward.
"""
from __future__ import annotations

import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Iterator

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


class Cancelled(Exception):
    """Raised inside the sampler callback when the consumer has gone away."""


def channel_ids(pipe: Pipeline) -> tuple[int, ...]:
    """Raw id of each one-hot channel of a model."""
    return class_ids(pipe.card.labels)


# model -> {(device, autocast dtype, labels per image): seconds of one forward}; weak, so unloading frees it
_FORWARD_SECONDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.no_grad()
def forward_seconds(pipe: Pipeline, settings: SamplingSettings) -> float:
    """Wall time of one denoiser evaluation for one image (label context + U-Net, guided rows included) under the
    resolved `settings`; timed once per model, device, precision and guidance mode, then cached."""
    guided = is_guided(settings.guidance)
    dtype = autocast_dtype(settings.precision, pipe.device)
    key = (str(pipe.device), dtype, 2 if guided else 1)
    cache = _FORWARD_SECONDS.setdefault(pipe.model, {})
    if key not in cache:
        size = pipe.card.unet.image_size
        y = pipe.encode(np.full((1, size, size), fill_id(pipe.card.labels), np.int64))  # (1, C, H, W)
        x = torch.zeros((1, 3, size, size), device=pipe.device)
        t = torch.full((1,), pipe.card.diffusion.num_timesteps // 2, device=pipe.device)
        if pipe.device.type == "cuda":
            torch.cuda.synchronize(pipe.device)
        start = time.perf_counter()
        if guided:
            ctx = pipe.model.label_context(torch.cat([y, torch.zeros_like(y)]), torch.tensor([False, True],
                                                                                              device=pipe.device))
        else:
            ctx = pipe.model.label_context(y)
        with torch.autocast(pipe.device.type, dtype=dtype, enabled=dtype is not None):
            pipe.model(x, t, ctx, labels_per_image=key[2])
        if pipe.device.type == "cuda":
            torch.cuda.synchronize(pipe.device)
        cache[key] = time.perf_counter() - start
    return cache[key]


def estimate_seconds(pipe: Pipeline, settings: SamplingSettings, num_samples: int) -> float:
    """Expected wall time of `num_samples` images under resolved `settings`: one forward x steps x samples
    (batch-linear, as on a CPU; a GPU runs a batch faster, so this errs on the long side)."""
    return forward_seconds(pipe, settings) * settings.steps * num_samples


def generate(pipe: Pipeline, label: np.ndarray, request: Request, inpaint: Inpaint | None = None) -> Result:
    """Images for one (H, W) label without previews (the API path)."""
    start = time.perf_counter()
    images = pipe.generate(label[None], **_generate_kwargs(request, inpaint))
    return Result(images, time.perf_counter() - start)


def _generate_kwargs(request: Request, inpaint: Inpaint | None) -> dict:
    """`Pipeline.generate` arguments besides the labels: only the settings that were set, the card does the rest."""
    seeds = [seed_for(request.seed, "sample", 0, j) for j in range(request.num_samples)]  # the bench's label 0
    kw = {"num_samples": request.num_samples, "seed": seeds, "settings": request.sampling}
    if inpaint is not None:
        kw.update(inpaint_image=inpaint.image[None], inpaint_mask=inpaint.mask[None])
    return kw


def stream_generate(pipe: Pipeline, label: np.ndarray, request: Request, table: ClassTable, *,
                    inpaint: Inpaint | None = None, min_interval: float = 0.2) -> Iterator[Preview | Result]:
    """Previews while `pipe` samples `label`, then the `Result`; sampler errors are re-raised here."""
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    ids = channel_ids(pipe)
    n = request.num_samples

    built = [float("-inf")]  # when the last preview was built: previews cost time, so build at most one per interval

    def callback(info: StepInfo) -> None:
        if stop.is_set():
            raise Cancelled()
        now = time.perf_counter()
        if now - built[0] < min_interval:
            return
        built[0] = now
        y = None if info.y_t is None else np.stack([onehot_view(info.y_t[i], table, ids) for i in range(n)])
        events.put(Preview(info.step, info.num_steps, info.t, x0_preview(info.x0[:n]), y))

    def work() -> None:
        start = time.perf_counter()
        try:
            images = pipe.generate(label[None], **_generate_kwargs(request, inpaint), callback=callback)
            events.put(Result(images, time.perf_counter() - start))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            events.put(e)

    worker = threading.Thread(target=work, name="scdm-demo-sampler", daemon=True)
    worker.start()
    last = 0.0
    try:
        while True:
            item = events.get()
            while isinstance(item, Preview) and not events.empty():
                item = events.get()  # drop stale previews: show the newest step only
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Result):
                yield item
                return
            now = time.perf_counter()
            if now - last >= min_interval:
                last = now
                yield item
    finally:
        stop.set()
        worker.join(timeout=30)
