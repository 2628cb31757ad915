"""`demo.workers.RemotePipeline`: generate in a worker process gives the local pipeline's pixels, the caller's
callback sees every step and can stop the child, and errors come back as they were raised."""
from __future__ import annotations

import numpy as np
import pytest

from demo.editing import example_scene
from demo.runner import Cancelled, generate_models
from demo.settings import Request
from demo.workers import RemotePipeline
from scdm.settings import SamplingSettings

SIZE = 64

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per test


@pytest.fixture(scope="module")
def remote(pipes):
    workers = [RemotePipeline(p) for p in pipes]
    yield workers
    for w in workers:
        w.close()


def test_remote_generate_is_the_local_generate(pipes, remote) -> None:
    label = example_scene(1, SIZE).label[None]
    for local, far in zip(pipes, remote):
        assert far.card == local.card and far.digest == local.digest and far.is_scdm == local.is_scdm
        kw = dict(num_samples=2, seed=[3, 4], steps=3)
        assert np.array_equal(far.generate(label, **kw), local.generate(label, **kw))


def test_callback_sees_every_step_and_can_stop_the_child(remote) -> None:
    label = example_scene(2, SIZE).label[None]
    seen = []
    far = remote[0]
    far.generate(label, num_samples=1, seed=[0], steps=4, callback=lambda info: seen.append((info.step, info.x0.shape)))
    assert seen == [(k, (1, 3, SIZE, SIZE)) for k in range(4)]

    def stop_at_second(info) -> None:
        if info.step == 1:
            raise Cancelled()

    with pytest.raises(Cancelled):
        far.generate(label, num_samples=1, seed=[0], steps=50, callback=stop_at_second)
    out = far.generate(label, num_samples=1, seed=[0], steps=2)  # the worker serves the next call
    assert out.shape == (1, SIZE, SIZE, 3)


def test_errors_come_back_and_the_worker_keeps_serving(remote) -> None:
    with pytest.raises(ValueError, match="not classes of this model"):
        remote[1].generate(np.full((1, SIZE, SIZE), 99), num_samples=1, seed=[0], steps=2)
    both = generate_models({"SCDM": remote[0], "SDM": remote[1]}, example_scene(0, SIZE).label,
                           Request(num_samples=1, sampling=SamplingSettings(steps=2)))
    assert set(both) == {"SCDM", "SDM"} and all(r.images.shape == (1, SIZE, SIZE, 3) for r in both.values())
    assert generate_models({"SCDM": remote[0]}, example_scene(0, SIZE).label,
                           Request(num_samples=1, sampling=SamplingSettings(steps=30)), stop=lambda: True) is None


def test_a_plan_with_threads_runs_remote_pipelines_one_after_the_other(pipes, remote) -> None:
    """Refine's plan on a CPU (one model after the other, a thread count per call, which only a worker process can
    honour: torch's count is per process) gives the local pipelines' pixels."""
    from demo.runner import RunPlan, stream_models
    from demo.classes import ClassTable

    label = example_scene(3, SIZE).label
    request = Request(num_samples=1, seed=1, sampling=SamplingSettings(steps=2))
    table = ClassTable.from_spec(pipes[0].card.labels)
    events = list(stream_models({"SCDM": remote[0], "SDM": remote[1]}, label, request, table, min_interval=0.0,
                                plan=RunPlan(side_by_side=False, threads=2)))
    local = generate_models({"SCDM": pipes[0], "SDM": pipes[1]}, label, request)
    for slot, ev in events:
        if hasattr(ev, "images"):
            np.testing.assert_array_equal(ev.images, local[slot].images)
    seen = []
    remote[0].generate(label[None], num_samples=1, seed=[0], steps=1, threads=2,
                       callback=lambda info: seen.append(info.step))
    assert seen == [0]
