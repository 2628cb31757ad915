"""Re-segmentation in the demo: the same numbers as the bench, the share of corrupted pixels a model follows, the
overlay, the share picture and the segmenter choice."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.config import Metric
from bench.scoring import Plan, build_scorer
from demo.canvas import canvas_value
from demo.classes import ClassTable
from demo.editing import example_scene
from demo.handlers import Handlers
from demo.models import Models
from demo.noise import apply_corruption
from demo.resegment import (FOLLOWED_COLOR, INTENDED_COLOR, OFF, Resegmenter, Scores, choose_segmenter, overlay,
                            percent, score, summary)
from demo.share import CELL, ModelRow, share_image
from demo.tiny import make_tiny_checkpoints
from scdm.pipeline import load_pipeline
from scdm.presets import world_labels

SIZE = 64

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def table() -> ClassTable:
    return ClassTable.from_spec(world_labels())


@pytest.fixture(scope="module")
def bench_scorer():
    """The bench's scorer for the two mIoU rows, built by the bench's own constructor."""
    plan = Plan((Metric.MIOU, Metric.MIOU_NOISY), segmenter="embedded")
    return build_scorer(plan, np.zeros((2, SIZE, SIZE, 3), np.uint8), "demo-test", device="cpu", batch_size=64)


@pytest.fixture(scope="module")
def handlers():
    a, b = make_tiny_checkpoints(Path(__import__("tempfile").mkdtemp(prefix="scdm-reseg-")))
    h = Handlers(Models.of(load_pipeline(a, device="cpu"), load_pipeline(b, device="cpu")), min_preview_interval=0.0)
    yield h
    h.store.cleanup()


def bench_rows(scorer, images: np.ndarray, clean: np.ndarray, noisy: np.ndarray) -> dict[Metric, float]:
    """What `bench run` writes for these images: each image's label repeated, as `bench.run` passes them."""
    n = len(images)
    rows, _ = scorer.score(images, [], np.repeat(clean[None], n, 0), np.repeat(noisy[None], n, 0))
    return {m: v for m, v, _ in rows}


def test_demo_scores_equal_the_bench_scores(table, bench_scorer) -> None:
    """Real scene images (the segmenter knows them) and a blank one, under a corruption that paints real classes."""
    scene = example_scene(0, SIZE)
    clean = scene.label.astype(np.int64)
    noisy = apply_corruption(clean, "overpaint", 0.6, 3, table)
    images = np.stack([scene.image, scene.image[:, ::-1], example_scene(1, SIZE).image,
                       np.full_like(scene.image, 128)])
    demo = Resegmenter.for_model("embedded", table)(images, clean, noisy).scores
    bench = bench_rows(bench_scorer, images, clean, noisy)
    assert demo.miou == bench[Metric.MIOU] and demo.miou_noisy == bench[Metric.MIOU_NOISY]
    assert 0.1 < demo.miou < 1.0 and demo.miou != demo.miou_noisy and demo.image_miou[0] > 0.5  # non-trivial
    assert demo.corrupted == 4 * int(((noisy != clean) & np.isin(clean, table.class_ids)).sum()) > 0


def test_the_generation_stream_scores_what_it_generated_like_the_bench(handlers, bench_scorer) -> None:
    """Through the demo's own path: the images in the downloads, scored by the bench, give the numbers shown."""
    clean = example_scene(2, SIZE).label.astype(np.int64)
    out = {}
    for update in handlers.generate_stream(canvas_value(clean, handlers.table, SIZE), "overpaint", 0.6, "ddim", 2,
                                           1.5, 4, 2):
        out.update(update)
    noisy = apply_corruption(clean, "overpaint", 0.6, 4, handlers.table)
    files = {Path(f).name: f for f in out["files"]}
    for slot in ("SCDM", "SDM"):
        images = np.stack([np.asarray(Image.open(files[f"{slot.lower()}_{k}.png"])) for k in range(2)])
        seg, update = handlers.resegment(slot, images, clean, noisy)
        bench = bench_rows(bench_scorer, images, clean, noisy)
        assert seg.scores.miou == bench[Metric.MIOU] and seg.scores.miou_noisy == bench[Metric.MIOU_NOISY]
        assert update[f"{slot} scores"] == out[f"{slot} scores"]  # what the page showed
        assert len(out[f"{slot} reseg"]) == 2 and out[f"{slot} reseg"][0][0].shape == (256, 256, 3)
        assert f"**{percent(seg.scores.followed_share)}** painted as the corruption" in out[f"{slot} scores"]
    assert "painted" in out["info"] and "of the corrupted pixels as the corruption" in out["info"]
    assert "share.png" in files


def test_followed_and_intended_shares_and_the_overlay() -> None:
    classes = (1, 2, 3)
    clean = np.ones((8, 8), np.int64)
    noisy = clean.copy()
    noisy[:4, :4] = 2  # 16 pixels painted as class 2
    noisy[6:, 6:] = 0  # 4 pixels unlabeled: a hole, followed when the image shows anything but class 1 there
    pred = np.ones((2, 8, 8), np.int64)
    pred[0, :4, :2] = 2  # image 0 follows the corruption on 8 of its 16 pixels, keeps the intended class elsewhere
    pred[1, :4, :4] = 3  # image 1 paints a third class: neither followed nor intended
    pred[1, 6:, 6:] = 3  # ... and paints its hole as class 3: followed
    s = score(pred, clean, noisy, classes)
    # corrupted 2 x 20; followed 8 (image 0) + 4 (image 1's hole); intended 8 + 4 (image 0) + 0
    assert (s.changed, s.corrupted, s.followed, s.intended) == (40, 40, 12, 12)
    assert s.followed_share == 0.3 and s.intended_share == 0.3
    image = np.full((8, 8, 3), 200, np.uint8)
    view = overlay(image, pred[0], clean, noisy, classes)
    assert (view[:4, :2] == FOLLOWED_COLOR).all() and (view[:4, 2:4] == INTENDED_COLOR).all()
    assert (view[6:, 6:] == INTENDED_COLOR).all()  # image 0 filled its hole with the intended class
    assert (view[4:6, :] == 70).all() and (view[6:, :6] == 70).all()  # dimmed, unmarked
    assert (overlay(image, pred[1], clean, noisy, classes)[6:, 6:] == FOLLOWED_COLOR).all()
    none = score(pred, clean, clean, classes)
    assert none.corrupted == 0 and none.followed_share is None
    unknown = score(pred, np.zeros_like(clean), noisy, classes)  # intended class unknown to the segmenter
    assert unknown.corrupted == 0


def test_summary_names_each_model() -> None:
    a = Scores(0.5, 0.4, (0.5,), 100, 100, 4, 80)
    b = Scores(0.5, 0.4, (0.5,), 100, 100, 31, 50)
    assert summary({"SCDM": a, "SDM": b}) == "SCDM painted 4% of the corrupted pixels as the corruption; SDM 31%"
    assert summary({"SCDM": Scores(0.5, 0.5, (0.5,), 0, 0, 0, 0)}) == ""


def test_the_segmenter_is_the_benchs_or_the_configured_one(table) -> None:
    assert choose_segmenter("embedded", None)[0] == "embedded"
    source, why = choose_segmenter("ade20k", "auto")
    assert source is None and "--segmenter smp-hub/segformer-b4-512x512-ade-160k" in why
    assert choose_segmenter("celebamask_hq", None) == (None, "no segmenter for celebamask_hq: start the demo with "
                                                             "`--segmenter DIR` (a bench segmenter directory)")
    assert choose_segmenter("ade20k", "some/dir")[0] == "some/dir"
    assert choose_segmenter("embedded", OFF)[0] is None
    missing = Resegmenter.for_model("embedded", table, "/no/such/segmenter")
    with pytest.raises(ValueError, match="cannot load segmenter `/no/such/segmenter`"):
        missing.load()
    assert not missing.available and "re-segmentation unavailable" in missing.note


def test_without_a_segmenter_the_view_says_so(handlers) -> None:
    h = Handlers(handlers.models, min_preview_interval=0.0, segmenter=OFF)
    try:
        out = {}
        value = canvas_value(example_scene(0, SIZE).label, h.table, SIZE)
        for update in h.generate_stream(value, "ds", 0.3, "ddim", 1, 1.5, 0, 1):
            out.update(update)
        assert out["SCDM reseg"] == [] and "Re-segmentation unavailable: off" in out["SCDM scores"]
        assert "re-segmentation unavailable: off (`--segmenter none`)" in out["info"]
        assert any(f.endswith("share.png") for f in out["files"])
    finally:
        h.store.cleanup()


def test_share_image_lays_out_labels_samples_and_text() -> None:
    label = np.zeros((SIZE, SIZE, 3), np.uint8)
    sample = np.full((SIZE, SIZE, 3), (1, 2, 3), np.uint8)  # a colour nothing else uses
    view = np.full((SIZE, SIZE, 3), (4, 5, 6), np.uint8)
    rows = [ModelRow("SCDM (tiny): ddim, 2 steps, x̂₀ extrapolation 0", "mIoU **0.50** vs your label",
                     np.stack([sample] * 3), np.stack([view] * 3))]
    im = share_image(["a header line " * 12], [(label, "your label"), (label, "corrupted label")], rows, ["footer"])
    arr = np.asarray(im)
    assert im.mode == "RGB" and im.width >= 640
    assert ((arr == (1, 2, 3)).all(-1).sum(), (arr == (4, 5, 6)).all(-1).sum()) == (3 * CELL**2, 3 * CELL**2)
    short = share_image(["a header line"], [(label, "your label")], rows)
    assert short.height < im.height  # the long header wraps onto more lines
    png = io.BytesIO()
    im.save(png, format="PNG")
    assert Image.open(io.BytesIO(png.getvalue())).size == im.size
