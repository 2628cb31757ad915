"""The demo with big label spaces: searchable class pickers, a collapsed legend, dataset templates as examples,
and the generation-time estimate that asks before a long run."""
from __future__ import annotations

from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
import torch

from demo.app import build_app
from demo.classes import ClassTable, class_choices, hex_color, parse_class
from demo.handlers import Handlers
from demo.models import Models
from demo.runner import estimate_seconds, forward_seconds
from demo.settings import Request
from demo.templates import FACES, STREETS, examples_for
from demo.tiny import make_tiny_checkpoints, tiny_card
from scdm.checkpoint import save_checkpoint
from scdm.config import LabelDiffusionConfig, LabelSchedule
from scdm.datasets import ADE20K_CLASSES, dataset_labels
from scdm.pipeline import Pipeline, load_pipeline
from scdm.unet import UNet

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per test


@pytest.fixture(scope="module")
def ade_pipe(tmp_path_factory) -> Pipeline:
    """A tiny random-weight SCDM over ADE20K's 150 classes + unlabeled, its card naming the dataset."""
    base = tiny_card(LabelSchedule.CLASSWISE)
    card = replace(base, labels=dataset_labels("ade20k"), name="tiny-ade20k", dataset="ade20k",
                   unet=replace(base.unet, label_channels=151),
                   label_diffusion=LabelDiffusionConfig(LabelSchedule.CLASSWISE, kappa=(2.0,) * 151))
    path = save_checkpoint(tmp_path_factory.mktemp("ade") / "ade", UNet(card.unet).state_dict(), card)
    return load_pipeline(path, device="cpu")


@pytest.fixture(scope="module")
def tiny_pipes(tmp_path_factory) -> tuple[Pipeline, Pipeline]:
    a, b = make_tiny_checkpoints(tmp_path_factory.mktemp("tiny"))
    return load_pipeline(a, device="cpu"), load_pipeline(b, device="cpu")


def _component(app: gr.Blocks, elem_id: str):
    return next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_ade20k_classes_are_picked_by_name(ade_pipe) -> None:
    app = build_app(ade_pipe, None)
    h = app.handlers
    try:
        picker = _component(app, "brush-class")
        names = [c[0] for c in picker.choices]
        assert picker.filterable and len(names) == 151 and "wall (1)" in names and "tree (5)" in names
        assert "unlabeled (0)" in names and picker.value == "wall (1)"  # the brush starts on a real class
        fill = _component(app, "fill-class")
        assert fill.filterable and [c[0] for c in fill.choices] == names and fill.value == "unlabeled (0)"
        legend = _component(app, "legend")
        assert legend.open is False and "151" in legend.label  # 151 swatches: collapsed

        tree = hex_color(ADE20K_CLASSES[4].color)
        assert ADE20K_CLASSES[4].name == "tree" and tree == "#04c803"
        update = h.brush("tree (5)")
        assert update.brush.default_color == tree and tree in update.brush.colors
        assert h.brush("tree").brush.default_color == tree  # a bare name works too (the API, typed text)
        with pytest.raises(ValueError, match="unknown class"):
            h.brush("treee")
        filled = h.fill("sky (3)")["background"]
        assert (filled[..., :3] == ADE20K_CLASSES[2].color).all()
        # the world speaks ADE20K ids: its scenes are this checkpoint's examples, and edit mode works
        assert h.examples.world and h.edit_available() and len(h.example_gallery()) == 8
    finally:
        app.close()
        h.store.cleanup()


def test_a_small_label_space_keeps_an_open_legend(tiny_pipes) -> None:
    app = build_app(*tiny_pipes)
    try:
        assert _component(app, "legend").open is True
        assert _component(app, "brush-class").value == "building (2)"
    finally:
        app.close()
        app.handlers.store.cleanup()


def test_parse_class() -> None:
    table = ClassTable.from_spec(dataset_labels("cityscapes"))
    assert parse_class(table, "car (26)") == 26 == parse_class(table, "car") == parse_class(table, 26)
    assert class_choices(table)[26] == "car (26)"
    for bad in ("car (27)", "plane", 99, None, True):
        with pytest.raises(ValueError, match="unknown class"):
            parse_class(table, bad)


@pytest.mark.parametrize("dataset, makers, needed", [
    ("celebamask_hq", FACES, {"background", "skin", "hair", "l_eye", "r_eye", "l_brow", "nose", "u_lip", "cloth"}),
    ("cityscapes", STREETS, {"sky", "building", "road", "sidewalk", "pole"}),
])
def test_dataset_templates_are_valid_label_maps(dataset, makers, needed) -> None:
    table = ClassTable.from_spec(dataset_labels(dataset))
    ex = examples_for(dataset, table, SIZE)
    assert len(ex.labels) == len(makers) >= 3 and not ex.world and ex.captions == tuple(makers)
    seen = set()
    for label, make in zip(ex.labels, makers.values()):
        assert label.shape == (SIZE, SIZE) and table.check(label) is not None and not table.invalid_ids(label)
        present = {table.name_of(int(r)) for r in np.unique(label)}
        assert len(present) >= 6, present
        seen |= present
        np.testing.assert_array_equal(label, make(SIZE))  # deterministic
    assert needed <= seen
    assert any("car" in {table.name_of(int(r)) for r in np.unique(lab)} for lab in ex.labels) or dataset != "cityscapes"
    assert examples_for(dataset, table, 128).labels[0].shape == (128, 128)


def test_other_datasets_get_no_examples(tiny_pipes) -> None:
    coco = ClassTable.from_spec(dataset_labels("coco_stuff"))
    ex = examples_for("coco_stuff", coco, SIZE)  # COCO covers the world's raw ids, but they mean other classes
    assert ex.labels == () and "no example label maps for coco_stuff" in ex.title
    assert examples_for("", coco, SIZE).labels == ()
    h = Handlers(Models.of(*tiny_pipes))
    object.__setattr__(h, "examples", ex)  # the cached property, as a COCO-Stuff checkpoint would have it
    try:
        assert not h.examples_available() and h.example_gallery() == [] and not h.edit_available()
        with pytest.raises(ValueError, match="no example label maps"):
            h.example(0)
    finally:
        h.store.cleanup()


def test_the_examples_tab_says_when_there_are_none(tmp_path) -> None:
    base = tiny_card(LabelSchedule.NONE)
    card = replace(base, labels=dataset_labels("coco_stuff"), name="tiny-coco", dataset="coco_stuff",
                   unet=replace(base.unet, label_channels=184))
    pipe = load_pipeline(save_checkpoint(tmp_path / "coco", UNet(card.unet).state_dict(), card), device="cpu")
    app = build_app(None, pipe)
    try:
        note = _component(app, "no-examples")
        assert "no example label maps for coco_stuff" in note.value
        assert _component(app, "examples").visible is False
    finally:
        app.close()
        app.handlers.store.cleanup()


def test_the_estimate_is_steps_times_one_forward_of_the_whole_batch(tiny_pipes) -> None:
    pipe = tiny_pipes[0]
    r = pipe.resolve()
    three = forward_seconds(pipe, r, 3)
    assert three > 0 and forward_seconds(pipe, r, 3) == three  # timed once per batch, then cached
    assert forward_seconds(pipe, r, 1) != three  # a batch of one is timed on its own
    assert estimate_seconds(pipe, replace(r, steps=4), 3) == pytest.approx(4 * three)
    assert estimate_seconds(pipe, replace(r, steps=8), 3) == pytest.approx(2 * estimate_seconds(pipe, replace(r, steps=4), 3))


def _run(stream) -> list[dict]:
    return list(stream)


def test_the_estimate_is_shown_and_a_long_run_waits_for_a_second_click(tiny_pipes) -> None:
    from demo.canvas import canvas_value
    from demo.editing import example_scene

    h = Handlers(Models.of(*tiny_pipes), min_preview_interval=0.0)
    table = h.table
    value = canvas_value(example_scene(0, SIZE).label, table, SIZE)
    args = (value, "none", 0.0, "ddim", 2, 1.0, 0, 2)
    try:
        updates = _run(h.generate_stream(*args))
        first = next(u["info"] for u in updates if "info" in u)
        assert "expected about" in first and "2 images x 2 steps per model on cpu" in first
        assert "beforehand" in updates[-1]["info"] and len(updates[-1]["files"]) > 0
        seconds, note = h.estimate(Request(num_samples=2), h.resolve(Request(num_samples=2)))
        assert seconds > 0 and note.startswith("expected about")

        slow = Handlers(h.models, min_preview_interval=0.0, long_run_seconds=0.0)
        asked = _run(slow.generate_stream(*args))
        assert len(asked) == 1 and set(asked[0]) == {"info"}  # nothing started
        msg = asked[0]["info"]
        assert "Not started" in msg and "expected about" in msg and "Generate** again" in msg
        assert "lower **Steps** and **Samples per model**: each step of one image takes about" in msg  # limit 0
        assert ("--device cuda" in msg) == torch.cuda.is_available()
        again = _run(slow.generate_stream(*args))  # the second click runs it
        assert any(u.get("SCDM gallery") for u in again) and "files" in again[-1]
        other = _run(slow.generate_stream(*args[:-1], 1))  # other settings: asked again
        assert len(other) == 1 and "Not started" in other[0]["info"]
        slow.store.cleanup()
        # a limit a quarter of the run: a quarter of the steps or of the samples fits
        q = Handlers(h.models, long_run_seconds=seconds / 4)
        tip = q._long_run(Request(num_samples=4), {"SCDM": replace(h.resolve(Request())["SCDM"], steps=8)}, seconds,
                          "note")
        assert "lower **Steps** to 2 or **Samples per model** to 1 for about" in tip
        q.store.cleanup()
    finally:
        h.store.cleanup()
