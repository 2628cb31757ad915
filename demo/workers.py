"""A pipeline that samples in its own process, with the torch threads each call asks for.

On a CPU the demo runs its two models two ways: side by side with one thread each (live images: one image of four
steps each, where the many small ops of a 64 px U-Net leave two threads of one process taking turns on Python's
GIL), and one after the other with every thread (Refine: 4 images per model). torch's thread count is global to a
process, so each model gets its own (README "Demo" has the measurements behind this).

`RemotePipeline(pipe)` starts a spawned process holding a copy of `pipe` and sends it every `generate` call; the
caller's callback still runs in the caller's process, once per sampler step (the step's `StepInfo` travels back),
and an exception it raises (a cancelled preview stream, a newer live input) stops the child at its next step and is
re-raised to the caller. Everything else (`card`, `resolve`, `digest`, ...) is the local pipeline's.
"""
from __future__ import annotations

import multiprocessing as mp
import threading
from typing import Any, Callable

import numpy as np

from scdm.pipeline import Pipeline
from scdm.samplers import StepInfo

START_TIMEOUT = 300.0  # s for the child to import torch and take the weights on a busy machine


class _Stopped(Exception):
    """Raised inside the child's sampler when the caller asked it to stop."""


def _serve(pipe: Pipeline, threads: int, conn: Any, cancel: Any) -> None:
    """The child: one `generate` at a time, its steps sent back while the caller listens."""
    import torch

    torch.set_num_threads(threads)
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except EOFError:  # the demo went away
            return
        if message is None:
            return
        labels, kwargs, wants_steps, call_threads = message
        torch.set_num_threads(call_threads or threads)

        def callback(info: StepInfo) -> None:
            if cancel.is_set():
                raise _Stopped()
            if wants_steps:
                conn.send(("step", info))

        try:
            conn.send(("done", pipe.generate(labels, callback=callback, **kwargs)))
        except _Stopped:
            conn.send(("stopped", None))
        except Exception as e:  # noqa: BLE001 - handed to the caller, which re-raises it
            conn.send(("error", e))


class RemotePipeline:
    """`pipe` with `generate` run in a worker process of `threads` torch threads (see the module docstring)."""

    def __init__(self, pipe: Pipeline, threads: int = 1):
        ctx = mp.get_context("spawn")
        self.pipe = pipe
        self._conn, child = ctx.Pipe()
        self._cancel = ctx.Event()
        self._lock = threading.Lock()  # one call at a time per process
        self._process = ctx.Process(target=_serve, args=(pipe, threads, child, self._cancel), daemon=True,
                                    name=f"scdm-demo-{pipe.card.name or 'model'}")
        self._process.start()
        child.close()
        self._ready = False  # the child says so first; several workers start side by side, `generate` waits

    def _wait_ready(self) -> None:
        if not self._ready:
            if not self._conn.poll(START_TIMEOUT):
                raise RuntimeError(f"the sampling process of {self.pipe.card.name!r} did not start within "
                                   f"{START_TIMEOUT:g} s")
            self._conn.recv()
            self._ready = True

    def __getattr__(self, name: str) -> Any:
        if name == "pipe":  # not set yet (unpickling, a failed __init__)
            raise AttributeError(name)
        return getattr(self.pipe, name)

    def generate(self, labels: np.ndarray, *, callback: Callable[[StepInfo], None] | None = None,
                 threads: int | None = None, **kwargs: Any) -> np.ndarray:
        """`Pipeline.generate` in the worker with `threads` torch threads (None: the worker's own); `callback` runs
        here at every step."""
        with self._lock:
            self._wait_ready()
            self._cancel.clear()
            self._conn.send((labels, kwargs, callback is not None, threads))
            raised: BaseException | None = None
            while True:
                kind, payload = self._conn.recv()
                if kind == "step":
                    if raised is None and callback is not None:
                        try:
                            callback(payload)
                        except BaseException as e:  # noqa: BLE001 - re-raised once the child has stopped
                            raised = e
                            self._cancel.set()
                    continue
                if raised is not None:
                    raise raised
                if kind == "done":
                    return payload
                if kind == "error":
                    raise payload
                raise RuntimeError("the sampling process stopped without being asked to")

    def close(self) -> None:
        """Stop the worker process (idempotent)."""
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.terminate()
        self._conn.close()
