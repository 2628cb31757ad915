"""Live mode: while the user paints, one SCDM and one SDM image at a few-step setting; the newest input wins.

Every change of the canvas or of the corruption first `Live.mark`s the user's browser session (an unqueued event
that returns at once), then one queued event (`trigger_mode="always_last"` keeps at most one waiting per session,
so no queue builds up; it reads the newest input when it starts) starts the run (`Live.start`), sends the label
views while it samples, and sends its images. A run
samples both models side by side, one image each from the same seed (the first image Refine makes), and checks at
every sampler step that its session has no newer mark: a superseded run stops at its next step and leaves the
images as they are, and the waiting event, with the newest input, starts at once. Sessions are independent: one
user's strokes never stop another user's run. One run samples at a time (the CPU is shared), and a run whose
input is already on screen (a knob that does not change the label) samples nothing.

`LIVE` is the few-step setting (README "Demo" measures it against the cards' defaults); guidance and
precision stay the card's (or the server's, `python -m demo --precision`).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from scdm.config import Sampler
from scdm.settings import SamplingSettings

from .handlers import Handlers
from .noise import apply_corruption
from .runner import Result, RunPlan, generate_models
from .settings import Request, label_digest
from .views import upscale

LIVE = SamplingSettings(sampler=Sampler.DDIM, steps=4, eta=1.0)  # the live images' sampler; the rest is the card's
MAX_SESSIONS = 1024  # sessions remembered; the least recently active is forgotten first (its next run starts afresh)


@dataclass
class Sessions:
    """Per browser session: a counter of its newest live input (bumped by `mark`) and what its live images show."""

    max_sessions: int = MAX_SESSIONS
    _state: OrderedDict = field(default_factory=OrderedDict)  # session -> [ticket, key of the images on screen]
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _get(self, session: str) -> list:
        state = self._state.pop(session, None) or [0, None]
        self._state[session] = state  # most recently used last
        while len(self._state) > self.max_sessions:
            self._state.popitem(last=False)
        return state

    def mark(self, session: str) -> int:
        """A newer input arrived for `session`: runs holding an older ticket stop at their next step."""
        with self._lock:
            state = self._get(session)
            state[0] += 1
            return state[0]

    def latest(self, session: str) -> int:
        with self._lock:
            return self._get(session)[0]

    def shown(self, session: str) -> Any:
        with self._lock:
            return self._get(session)[1]

    def show(self, session: str, key: Any) -> None:
        with self._lock:
            self._get(session)[1] = key


@dataclass(frozen=True)
class LiveResult:
    """One live run: an upscaled image per loaded model (None where a slot is empty) and a line of text."""

    images: dict[str, np.ndarray | None]  # slot -> (side, side, 3) uint8
    info: str
    label_sha256: str  # the corrupted label the images were made from (`settings.label_digest`)


class Live:
    """Live images for one set of `Handlers` (its models, label decoding and the server's settings)."""

    def __init__(self, handlers: Handlers, settings: SamplingSettings = LIVE, plan: RunPlan = RunPlan()):
        self.handlers = handlers
        self.plan = plan  # how the two models share the CPU (`python -m demo`: side by side, one thread each)
        self.settings = replace(handlers.sampling, **settings.given())  # the server's precision etc. still apply
        self.sessions = Sessions()
        self._sampling = threading.Lock()  # one live run samples at a time
        self._workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="scdm-demo-live")  # = its event's limit
        for _, pipe in handlers.models.slots():
            if pipe is not None:
                pipe.resolve(self.settings)  # a setting a model cannot run fails at start-up

    def describe(self) -> str:
        """"DDIM, 4 steps, eta 1" for the labels."""
        s = self.settings
        eta = f", eta {s.eta:g}" if s.sampler == Sampler.DDIM and s.eta is not None else ""
        name = "DDIM" if s.sampler == Sampler.DDIM else s.sampler.value
        return f"{name}, {s.steps} steps{eta}"

    def mark(self, session: str) -> None:
        self.sessions.mark(session)

    def run(self, session: str, value: dict[str, Any] | None, corruption: Any, severity: Any,
            seed: Any) -> LiveResult | None:
        """Images for the canvas `value` under the corruption; None when a newer input for `session` arrived
        meanwhile or when its images already show this input. A user error (empty canvas, bad severity) is a
        ValueError."""
        return self.start(session, value, corruption, severity, seed).result()

    def start(self, session: str, value: dict[str, Any] | None, corruption: Any, severity: Any,
              seed: Any) -> Future:
        """`run` in the background: the label is decoded and corrupted here (a user error is a ValueError now),
        the sampling runs on a worker thread while the caller sends the label views; `.result()` is `run`'s."""
        ticket = self.sessions.latest(session)
        h = self.handlers
        label = h.decode_editor(value).label
        request = Request.parse(corruption, severity, seed, 1, self.settings)
        noisy = apply_corruption(label, request.corruption, request.severity, request.seed, h.table)
        key = (label_digest(noisy), request.seed)
        if self.sessions.shown(session) == key:
            done: Future = Future()
            done.set_result(None)
            return done

        def job() -> LiveResult | None:
            out = self.sample(noisy, request, lambda: self.sessions.latest(session) != ticket)
            if out is not None:
                self.sessions.show(session, key)
            return out

        return self._workers.submit(job)

    def sample(self, label: np.ndarray, request: Request,
               stop: Callable[[], bool] | None = None) -> LiveResult | None:
        """One image per loaded model for an (H, W) label, the models side by side; None if `stop()` turned true."""
        pipes = {slot: pipe for slot, pipe in self.handlers.models.slots() if pipe is not None}
        with self._sampling:
            start = time.perf_counter()
            results: dict[str, Result] | None = generate_models(pipes, label, request, stop=stop, plan=self.plan)
        if results is None:
            return None
        seconds = time.perf_counter() - start
        each = ", ".join(f"{slot} {r.seconds:.2f} s" for slot, r in results.items())
        digest = label_digest(label)
        info = (f"Live: {self.describe()}, one image per model in {seconds:.2f} s ({each}), seed {request.seed}, "
                f"label `{digest[:12]}`; **Refine** samples with the full sampler.")
        images = {slot: upscale(results[slot].images[0]) if slot in results else None
                  for slot, _ in self.handlers.models.slots()}
        return LiveResult(images, info, digest)
