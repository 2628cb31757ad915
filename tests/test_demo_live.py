"""Live mode on tiny random-weight models: one image per model at the live setting, newest input wins per session,
and the runner that samples both models side by side."""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import numpy as np
import pytest

from demo.canvas import canvas_value
from demo.editing import example_scene
from demo.handlers import Handlers
from demo.models import Models
from demo.live import LIVE, Live, Sessions
from demo.runner import Preview, Result, generate, generate_models, stream_models
from demo.settings import Request
from demo.views import upscale
from scdm.config import Sampler
from scdm.pipeline import load_pipeline
from scdm.settings import SamplingSettings

SIZE = 64

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per test


@pytest.fixture()
def live(pipes) -> Live:
    h = Handlers(Models.of(*pipes), min_preview_interval=0.0)
    yield Live(h)
    h.store.cleanup()


def canvas(index: int = 0) -> dict:
    from demo.classes import ClassTable
    from scdm.presets import world_labels

    return canvas_value(example_scene(index, SIZE).label, ClassTable.from_spec(world_labels()), SIZE)


def test_live_is_refines_first_image_at_the_few_step_setting(live: Live, pipes) -> None:
    """Both models, one image each from the request's seed: the first image Refine makes with the live sampler."""
    assert live.settings.sampler == Sampler.DDIM and live.settings.steps == LIVE.steps <= 6
    assert live.settings.guidance is None and live.settings.precision is None  # the card's
    out = live.run("a", canvas(0), "edge", 0.3, 5)
    assert out is not None and list(out.images) == ["SCDM", "SDM"]
    label = example_scene(0, SIZE).label
    from demo.noise import apply_corruption

    noisy = apply_corruption(label, "edge", 0.3, 5, live.handlers.table)
    for slot, pipe in zip(("SCDM", "SDM"), pipes):
        refine = generate(pipe, noisy, Request(seed=5, num_samples=1, sampling=live.settings)).images[0]
        np.testing.assert_array_equal(out.images[slot], upscale(refine))
    assert "DDIM, 4 steps, eta 1" in out.info and out.label_sha256[:12] in out.info


def test_the_server_setting_still_applies(pipes) -> None:
    h = Handlers(Models.of(*pipes), sampling=SamplingSettings(precision="fp32", guidance=2.0))
    live = Live(h)
    assert live.settings.precision.value == "fp32" and live.settings.guidance == 2.0
    assert live.settings.steps == LIVE.steps  # the live sampler replaces the server's sampler settings
    h.store.cleanup()


def test_a_newer_input_of_the_same_session_stops_the_run(live: Live, monkeypatch) -> None:
    """A mark during the run (here: at its first step check) ends it without images; another session's mark does not."""
    def marking(session_to_mark: str):
        calls = []
        latest = Sessions.latest.__get__(live.sessions)

        def spy(session: str) -> int:
            calls.append(session)
            if len(calls) == 2:  # the first check inside the sampler (the first call reads the run's ticket)
                live.mark(session_to_mark)
            return latest(session)
        return spy

    monkeypatch.setattr(live.sessions, "latest", marking("a"))
    assert live.run("a", canvas(1), "none", 0.0, 0) is None
    monkeypatch.setattr(live.sessions, "latest", marking("b"))
    assert live.run("a", canvas(1), "none", 0.0, 0) is not None


def test_an_input_already_on_screen_samples_nothing(live: Live) -> None:
    assert live.run("a", canvas(2), "none", 0.0, 0) is not None
    assert live.run("a", canvas(2), "none", 0.0, 0) is None  # e.g. the explainer's t slider: same label, same seed
    assert live.run("b", canvas(2), "none", 0.0, 0) is not None  # another session has its own screen
    assert live.run("a", canvas(2), "none", 0.0, 1) is not None  # another seed
    assert live.run("a", canvas(2), "random", 0.5, 1) is not None  # another corruption


def test_live_user_errors_are_value_errors(live: Live) -> None:
    with pytest.raises(ValueError, match="canvas is empty"):
        live.run("a", None, "none", 0.0, 0)
    with pytest.raises(ValueError, match="severity"):
        live.run("a", canvas(0), "edge", 7.0, 0)


def test_sessions_are_independent_and_bounded() -> None:
    s = Sessions(max_sessions=2)
    assert s.mark("a") == 1 and s.mark("a") == 2 and s.mark("b") == 1
    assert s.latest("a") == 2 and s.latest("b") == 1
    s.show("a", "key")
    assert s.shown("a") == "key" and s.shown("b") is None
    s.mark("c")  # "a" was used least recently: forgotten (a newer run for it would simply start afresh)
    assert s.latest("a") == 0 and s.shown("a") is None


def test_generate_models_samples_both_and_stops_on_request(pipes) -> None:
    label = example_scene(3, SIZE).label
    request = Request(num_samples=1, seed=2, sampling=SamplingSettings(steps=2))
    both = generate_models({"SCDM": pipes[0], "SDM": pipes[1]}, label, request)
    assert list(both) == ["SCDM", "SDM"]
    for slot, pipe in zip(both, pipes):  # side by side gives the same pixels as one at a time
        np.testing.assert_array_equal(both[slot].images, generate(pipe, label, request).images)
    assert generate_models({"SCDM": pipes[0], "SDM": pipes[1]}, label, request, stop=lambda: True) is None
    with pytest.raises(ValueError, match="not classes of this model"):
        generate_models({"SCDM": pipes[0]}, np.full((SIZE, SIZE), 99), request)


def test_stream_models_runs_both_models_and_reports_each(pipes) -> None:
    from demo.classes import ClassTable

    label = example_scene(4, SIZE).label
    request = Request(num_samples=2, seed=1, sampling=SamplingSettings(steps=3))
    table = ClassTable.from_spec(pipes[0].card.labels)
    events = list(stream_models({"SCDM": pipes[0], "SDM": pipes[1]}, label, request, table, min_interval=0.0))
    results = {slot: ev for slot, ev in events if isinstance(ev, Result)}
    assert set(results) == {"SCDM", "SDM"}
    assert {slot for slot, ev in events if isinstance(ev, Preview)} <= {"SCDM", "SDM"}
    for slot, ev in events:  # no preview of a model after its result
        assert not (isinstance(ev, Preview) and events.index((slot, results[slot])) < events.index((slot, ev)))
    for slot, pipe in zip(("SCDM", "SDM"), pipes):
        np.testing.assert_array_equal(results[slot].images, generate(pipe, label, request).images)
    stream = stream_models({"SCDM": pipes[0], "SDM": pipes[1]}, label,
                           Request(num_samples=1, sampling=SamplingSettings(steps=200)), table, min_interval=0.0)
    next(stream)
    stream.close()  # stops both samplers
    assert not any(t.name.startswith("scdm-demo-sampler") and t.is_alive() for t in threading.enumerate())


def test_one_after_the_other_starts_the_second_model_when_the_first_is_done(pipes) -> None:
    """Refine's CPU plan: SCDM starts, streams and finishes before SDM starts; the same pixels as side by side."""
    from demo.classes import ClassTable
    from demo.runner import RunPlan, Started

    label = example_scene(5, SIZE).label
    request = Request(num_samples=2, seed=4, sampling=SamplingSettings(steps=3))
    table = ClassTable.from_spec(pipes[0].card.labels)
    events = list(stream_models({"SCDM": pipes[0], "SDM": pipes[1]}, label, request, table, min_interval=0.0,
                                plan=RunPlan(side_by_side=False)))
    kinds = [(slot, type(ev).__name__) for slot, ev in events]
    assert kinds[0] == ("SCDM", "Started") and kinds[-1] == ("SDM", "Result")
    assert kinds.index(("SCDM", "Result")) < kinds.index(("SDM", "Started"))
    assert {k for k in kinds[:kinds.index(("SCDM", "Result"))]} <= {("SCDM", "Started"), ("SCDM", "Preview")}
    results = {slot: ev for slot, ev in events if isinstance(ev, Result)}
    for slot, pipe in zip(("SCDM", "SDM"), pipes):
        np.testing.assert_array_equal(results[slot].images, generate(pipe, label, request).images)
    assert sum(isinstance(ev, Started) for _, ev in events) == 2
    one = generate_models({"SCDM": pipes[0], "SDM": pipes[1]}, label, request, plan=RunPlan(side_by_side=False))
    for slot in results:
        np.testing.assert_array_equal(one[slot].images, results[slot].images)
    stream = stream_models({"SCDM": pipes[0], "SDM": pipes[1]}, label,
                           Request(num_samples=1, sampling=SamplingSettings(steps=200)), table, min_interval=0.0,
                           plan=RunPlan(side_by_side=False))
    assert next(stream) == ("SCDM", Started())
    stream.close()  # stops SCDM; SDM never starts
    assert not any(t.name.startswith("scdm-demo-sampler") and t.is_alive() for t in threading.enumerate())


# --- in a real browser: `python -m demo` (the bundled models: the tiny random-weight ones draw the same image for every
# label) and headless chromium (skipped without /usr/bin/chromium) ------------------------------------------------

def _browser_test(fn):
    from test_demo_e2e import CHROMIUM

    fn = pytest.mark.e2e(fn)
    missing = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: apt-get install -y chromium")
    return missing(fn)


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    """`python -m demo --threads 1` (the bundled models) in a subprocess; yields its URL."""
    from test_demo_e2e import STARTUP_TIMEOUT


    from benchmarks.demo_latency import demo_server

    tmp = tmp_path_factory.mktemp("live-e2e")
    try:
        with demo_server(["--threads", "1"], STARTUP_TIMEOUT, tmp / "server.log") as url:
            yield url
    except RuntimeError as e:
        pytest.fail(str(e))


@pytest.fixture()
def page(demo_url):
    from test_demo_e2e import browser_page

    with browser_page(demo_url, height=1800) as page:
        for slot in ("scdm", "sdm"):  # the live images of the starting example
            page.locator(f"#live-{slot} img").first.wait_for()
        yield page


def live_srcs(page) -> list[str | None]:
    return [page.locator(f"#live-{slot} img").first.get_attribute("src") for slot in ("scdm", "sdm")]


def stroke(page, row: float) -> None:
    """A horizontal stroke across the label at `row` (0 = top, 1 = bottom) with the current brush."""
    box = page.locator("#canvas canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    y = cy - 100 + 200 * row
    page.mouse.move(cx - 100, y)
    page.mouse.down()
    for i in range(1, 11):
        page.mouse.move(cx - 100 + 20 * i, y)
    page.mouse.up()


def fetch_image(page, url: str, src: str) -> np.ndarray:
    from PIL import Image

    body = page.request.get(src if src.startswith("http") else urljoin(url + "/", src)).body()
    return np.asarray(Image.open(io.BytesIO(body)).convert("RGB"))


@_browser_test
def test_strokes_redraw_the_live_images(page) -> None:
    before = live_srcs(page)
    stroke(page, 0.35)  # the first stroke after loading counts too
    page.wait_for_function("([a, b]) => { const s = ['scdm', 'sdm'].map(k => document.querySelector(`#live-${k} img`)"
                           "?.getAttribute('src')); return s[0] !== a && s[1] !== b; }", arg=before)
    assert "Live: DDIM, 4 steps" in page.locator("#live-info").inner_text()


@_browser_test
def test_a_burst_of_strokes_ends_with_the_last_labels_images(page, demo_url) -> None:
    """Strokes faster than the live images: the images on screen at the end are those of the final label."""
    from demo.classes import ClassTable
    from demo.settings import label_digest

    url = demo_url
    for k in range(6):
        stroke(page, 0.1 + 0.15 * k)
        page.wait_for_timeout(150)
    h = Handlers(Models.of(load_pipeline("embedded-scdm", device="cpu"), load_pipeline("embedded-sdm", device="cpu")))
    table, live = ClassTable.from_spec(h.models.primary.card.labels), Live(h)
    deadline = time.time() + 120
    while True:  # until the live images show the label the page decoded last
        decoded = fetch_image(page, url, page.locator("#decoded img").get_attribute("src"))[::4, ::4]
        colors = np.asarray(table.colors, np.uint8)
        label = np.asarray(table.raw_ids)[np.argmin(np.abs(decoded[:, :, None].astype(int) - colors).sum(-1), -1)]
        if label_digest(label)[:12] in page.locator("#live-info").inner_text():
            break
        assert time.time() < deadline, "the live images never showed the last label"
        page.wait_for_timeout(500)
    shown = [fetch_image(page, url, src) for src in live_srcs(page)]
    expected = live.sample(label, Request(seed=0, num_samples=1, sampling=live.settings))
    for image, slot in zip(shown, ("SCDM", "SDM")):
        assert np.abs(image.astype(int) - expected.images[slot]).mean() < 1.0, slot
    h.store.cleanup()


@_browser_test
def test_switching_live_off_stops_the_updates(page) -> None:
    from playwright import sync_api

    page.locator("#live-on input").uncheck()
    sync_api.expect(page.locator("#live-info")).to_contain_text("Live mode is off")
    before, decoded = live_srcs(page), page.locator("#decoded img").get_attribute("src")
    stroke(page, 0.8)
    page.wait_for_function("src => document.querySelector('#decoded img')?.getAttribute('src') !== src", arg=decoded)
    page.wait_for_timeout(3000)
    assert live_srcs(page) == before  # the label views follow the canvas, the live images do not
    page.locator("#live-on input").check()  # back on: the images catch up with the canvas
    page.wait_for_function("([a, b]) => { const s = ['scdm', 'sdm'].map(k => document.querySelector(`#live-${k} img`)"
                           "?.getAttribute('src')); return s[0] !== a && s[1] !== b; }", arg=before)
