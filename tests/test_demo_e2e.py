"""End to end in a real browser: start `python -m demo`, upload and paint a label, generate, see both galleries.

Needs Debian's `chromium` (/usr/bin/chromium) and the `playwright` Python package; the test is skipped with
a reason when either is missing. The full-page screenshot goes to `artifacts/demo/` (git-ignored).
"""
from __future__ import annotations

import io
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urljoin

import numpy as np
import pytest
from PIL import Image

from demo.classes import ClassTable
from scdm.presets import world_labels
from scdm.world import make_scene


CHROMIUM = os.environ.get("SCDM_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("SCDM_ARTIFACTS", REPO / "artifacts")) / "demo"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STARTUP_TIMEOUT = 240  # s: importing torch and gradio on a busy 2-core machine
STEP_TIMEOUT = 180_000  # ms per browser wait: generous, a loaded CI machine renders the page slowly

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} missing: apt-get install -y chromium"),
]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    """`python -m demo --tiny DIR` in a subprocess (one torch thread); yields the URL it prints.

    Set SCDM_DEMO_URL to test an already running demo instead.
    """
    if os.environ.get("SCDM_DEMO_URL"):
        yield os.environ["SCDM_DEMO_URL"].rstrip("/")
        return
    from benchmarks.demo_latency import demo_server

    tmp = tmp_path_factory.mktemp("e2e")
    try:
        with demo_server(["--tiny", str(tmp / "ckpt"), "--threads", "1"], STARTUP_TIMEOUT, tmp / "server.log") as url:
            yield url
    except RuntimeError as e:
        pytest.fail(str(e))


@contextmanager
def browser_page(url: str, height: int = 1600) -> Iterator:
    """A headless chromium page on the demo at `url`, its paint canvas loaded; fails the test on any page error."""
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": height})
        page.set_default_timeout(STEP_TIMEOUT)
        sync_api.expect.set_options(timeout=STEP_TIMEOUT)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try:
            page.goto(url)
            page.locator("#canvas canvas").first.wait_for(timeout=STEP_TIMEOUT)
            yield page
        finally:
            browser.close()
    assert not errors, errors


def paint_stroke(page, editor: str) -> None:
    """Drag the mouse across the middle of an ImageEditor's canvas with the current brush."""
    canvas = page.locator(f"{editor} canvas").first
    canvas.scroll_into_view_if_needed()  # mouse events land in the viewport
    box = canvas.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 70, cy - 50)
    page.mouse.down()
    for i in range(25):
        page.mouse.move(cx - 70 + i * 6, cy - 50 + i * 3)
    page.mouse.up()


def set_number(page, elem_id: str, value: int) -> None:
    box = page.locator(f"#{elem_id} input[type=number]")
    box.fill(str(value))
    box.press("Enter")


def test_paint_upload_generate_in_browser(demo_url: str, tmp_path) -> None:
    from playwright import sync_api  # required (the [test] extra); only a missing chromium skips this test
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    table = ClassTable.from_spec(world_labels())
    label_file = tmp_path / "label.jpg"  # a colour-coded JPEG: snapped to the palette, with a report
    Image.fromarray(table.colorize(make_scene(6, "test").label).repeat(4, 0).repeat(4, 1)).save(label_file,
                                                                                                quality=90)
    present = set(np.unique(make_scene(6, "test").label).tolist())
    rid = next(r for r in table.class_ids if r not in present)
    absent, color = table.name_of(rid), np.asarray(table.colors[table.raw_ids.index(rid)], np.uint8)
    choice = f"{absent} ({rid})"
    bad_file = tmp_path / "not-a-label.png"
    bad_file.write_bytes(b"this is text, not a PNG")

    with browser_page(demo_url) as page:
        sync_api.expect(page.locator("#canvas-report")).to_contain_text("Read as")

        # Upload: a non-image gives a clear message; a colour JPEG is decoded and reported.
        page.get_by_role("tab", name="Upload").click()
        page.locator("#upload input[type=file]").set_input_files(str(bad_file))
        sync_api.expect(page.locator("#upload-report")).to_contain_text("not a readable image")
        page.locator("#upload input[type=file]").set_input_files(str(label_file))
        report = page.locator("#upload-report")
        sync_api.expect(report).to_contain_text("colour-coded")
        sync_api.expect(report).to_contain_text("resized 256x256 -> 64x64")

        # Pick a class the label lacks by typing its name, paint over the uploaded label: the stroke has its colour.
        page.get_by_role("tab", name="Paint").click()
        page.locator("#brush-class input").fill(absent)
        page.get_by_role("option", name=choice, exact=True).click()
        before = page.locator("#decoded img").get_attribute("src")
        paint_stroke(page, "#canvas")
        page.wait_for_function(
            "src => document.querySelector('#decoded img')?.getAttribute('src') !== src", arg=before)
        src = page.locator("#decoded img").get_attribute("src")
        decoded = np.asarray(Image.open(io.BytesIO(page.request.get(urljoin(demo_url + "/", src)).body())))
        assert (decoded[..., :3] == color).all(-1).any(), f"no {absent} pixels after painting with it"
        page.locator("#corruption input").click()
        page.get_by_role("option", name="edge", exact=True).click()
        sync_api.expect(page.locator("#steps")).to_contain_text("card: 20")  # the card's defaults
        sync_api.expect(page.locator("#sampler input")).to_have_value("ddim")
        set_number(page, "steps", 4)
        set_number(page, "samples", 2)

        # Generate: both galleries fill, the info shows the latency, downloads appear.
        page.locator("#generate").click()
        for gallery in ("#scdm-gallery", "#sdm-gallery"):
            page.wait_for_function(f"document.querySelectorAll('{gallery} img').length >= 2",
                                   timeout=STEP_TIMEOUT)
        sync_api.expect(page.locator("#info")).to_contain_text("images in")
        sync_api.expect(page.locator("#info")).to_contain_text("corruption edge")
        sync_api.expect(page.locator("#downloads")).to_contain_text("settings")
        page.screenshot(path=str(ARTIFACTS / "e2e.png"), full_page=True)
    shot = np.asarray(Image.open(ARTIFACTS / "e2e.png"))
    assert shot.shape[0] > 800 and shot.std() > 10


def test_resegmentation_and_editing_your_own_picture_in_browser(demo_url: str, tmp_path) -> None:
    """Generate under a corruption that paints wrong classes: each gallery gets its re-segmentation and scores, the
    downloads the share picture. Then edit an uploaded picture with its label map: before / after."""
    from playwright import sync_api
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    scene = make_scene(5, "test")
    picture, label_file = tmp_path / "photo.png", tmp_path / "photo_label.png"
    Image.fromarray(scene.image).resize((128, 128), Image.Resampling.BICUBIC).save(picture)
    Image.fromarray(scene.label.astype(np.uint8)).save(label_file)  # an 8-bit index PNG of raw ids
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((64, 64), 300, np.uint16)).save(deep)  # 16-bit: refused as a picture
    table = ClassTable.from_spec(world_labels())
    rid = next(r for r in table.class_ids if r not in set(np.unique(scene.label).tolist()))
    brush = f"{table.name_of(rid)} ({rid})"  # a class the picture's label lacks: any stroke repaints

    with browser_page(demo_url) as page:
        sync_api.expect(page.locator("#canvas-report")).to_contain_text("Read as")
        page.locator("#corruption input").click()
        page.get_by_role("option", name="overpaint", exact=True).click()
        set_number(page, "steps", 2)
        set_number(page, "samples", 1)

        # Re-segmentation beside each gallery, the summary in the info, the share picture in the downloads.
        page.locator("#generate").click()
        for slot in ("scdm", "sdm"):
            page.wait_for_function(f"document.querySelectorAll('#{slot}-reseg img').length >= 1",
                                   timeout=STEP_TIMEOUT)
            sync_api.expect(page.locator(f"#{slot}-scores")).to_contain_text("corrupted pixels")
        sync_api.expect(page.locator("#info")).to_contain_text("of the corrupted pixels as the corruption")
        sync_api.expect(page.locator("#downloads")).to_contain_text("share")
        page.screenshot(path=str(ARTIFACTS / "e2e-resegment.png"), full_page=True)

        # Edit your own picture: a 16-bit image is refused with a message, a picture and its label map load.
        page.get_by_role("tab", name="Edit a picture").click()
        page.locator("#edit-own").get_by_text("Your own picture").click()
        page.locator("#edit-picture input[type=file]").set_input_files(str(deep))
        sync_api.expect(page.get_by_text(re.compile("16-bit single-channel image")).first).to_be_visible()
        page.locator("#edit-picture").get_by_role("button", name="Clear").click()
        page.locator("#edit-label input[type=file]").set_input_files(str(label_file))
        page.locator("#edit-picture input[type=file]").set_input_files(str(picture))
        report = page.locator("#edit-report")
        sync_api.expect(report).to_contain_text("your picture (photo.png) with your label map (photo_label.png)")
        sync_api.expect(report).to_contain_text("picture resized 128x128 -> 64x64 px")
        page.locator("#edit-brush-class input").fill(table.name_of(rid))
        page.get_by_role("option", name=brush, exact=True).click()
        for attempt in range(3):  # a stroke made while the editor still loads the new label can be dropped
            page.wait_for_timeout(1000)
            paint_stroke(page, "#edit-canvas")
            try:
                page.wait_for_function("document.querySelector('#edit-mask img') !== null", timeout=30_000)
                break
            except sync_api.TimeoutError:
                assert attempt < 2, "the repainted region never showed"
        page.locator("#edit-generate").click()
        page.wait_for_function("document.querySelectorAll('#edit-compare img').length >= 3", timeout=STEP_TIMEOUT)
        sync_api.expect(page.locator("#edit-info")).to_contain_text("edit of your picture (photo.png)")
        sync_api.expect(page.locator("#edit-downloads")).to_contain_text("edit_image")
        page.screenshot(path=str(ARTIFACTS / "e2e-edit.png"), full_page=True)
