"""Demo actions on tiny random-weight models: streaming, downloads that reproduce the images, edit mode, API."""
from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from demo.canvas import canvas_value
from demo.editing import example_scene, repaint_mask
from demo.handlers import Handlers
from demo.models import Models
from demo.replay import replay
from demo.runner import Preview, stream_generate
from demo.settings import CARD, SETTINGS_VERSION, Request, label_digest
from demo.tiny import make_tiny_checkpoints
from demo.views import upscale
from scdm.checkpoint import save_checkpoint
from scdm.config import Precision, Sampler, SamplerConfig, Spacing
from scdm.label_io import index_png
from scdm.pipeline import Pipeline, load_pipeline
from scdm.settings import SamplingSettings, identity

SIZE = 64


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per test


@pytest.fixture(scope="module")
def handlers(pipes) -> Handlers:
    h = Handlers(Models.of(*pipes), min_preview_interval=0.0)
    yield h
    h.store.cleanup()


def run(stream) -> dict:
    """Merge the streamed updates; remember whether previews came."""
    merged: dict = {"previews": 0}
    for update in stream:
        merged["previews"] += sum(k.endswith("preview") for k in update)
        merged.update(update)
    return merged


def test_models_are_sorted_into_slots(pipes) -> None:
    scdm, sdm = pipes
    m = Models.of(sdm, scdm)
    assert m.scdm is scdm and m.sdm is sdm and m.size == SIZE and m.primary is scdm
    assert Models.of(sdm).scdm is None and Models.of(sdm).primary is sdm
    with pytest.raises(ValueError, match="one SCDM and/or one SDM"):
        Models.of(scdm, scdm)
    other = Pipeline(sdm.model, replace(sdm.card, unet=replace(sdm.card.unet, image_size=32)))
    with pytest.raises(ValueError, match="works at 64 px"):
        Models.of(scdm, other)


def test_generate_streams_previews_galleries_and_downloads(handlers: Handlers) -> None:
    label = example_scene(0, SIZE).label
    out = run(handlers.generate_stream(canvas_value(label, handlers.table, SIZE), "edge", 0.3, "ddim", 3, 1.5, 5, 2))
    assert out["previews"] >= 2
    for slot in ("SCDM", "SDM"):
        assert len(out[f"{slot} gallery"]) == 2 and out[f"{slot} gallery"][0][0].shape == (256, 256, 3)
        assert out[f"{slot} preview"].shape[0] == 2 * 128 + 4  # x̂0 row, gap, y_t row
    names = sorted(Path(f).name for f in out["files"])
    assert names == sorted(["label.png", "label_color.png", "label_corrupted_color.png", "scdm_0.png", "scdm_1.png",
                            "sdm_0.png", "sdm_1.png", "share.png", "settings.json"])
    assert "**SCDM** (`tiny-scdm`): 2 images in" in out["info"] and "corruption `edge`" in out["info"]


def test_settings_json_reproduces_the_images(handlers: Handlers, pipes) -> None:
    label = example_scene(1, SIZE).label
    out = run(handlers.generate_stream(canvas_value(label, handlers.table, SIZE), "random", 0.4, "ancestral", 2, 1.75,
                                       11, 1))
    files = {Path(f).name: Path(f) for f in out["files"]}
    doc = json.loads(files["settings.json"].read_text())
    assert doc["label_sha256"] == label_digest(label) and doc["version"] == SETTINGS_VERSION == 3
    assert doc["requested"] == {"sampler": "ancestral", "steps": 2}  # guidance 1.75 is the card's: not set
    for pipe, slot in zip(pipes, ("SCDM", "SDM")):
        resolved = pipe.resolve(SamplingSettings(sampler="ancestral", steps=2))
        assert doc["models"][slot] == {"name": pipe.card.name, "digest": pipe.digest, "settings": identity(resolved)}
        assert set(identity(resolved)) >= {"precision", "extrapolation", "dynamic_threshold", "spacing"}
        again = replay(files["settings.json"], pipe)
        assert np.array_equal(again[0], np.asarray(Image.open(files[f"{slot.lower()}_0.png"]))), slot


def with_card(pipe: Pipeline, path: Path, **sampler) -> Pipeline:
    """`pipe`'s weights re-saved under a card with other sampling defaults, loaded back."""
    card = replace(pipe.card, sampler=replace(SamplerConfig(), **sampler))
    return load_pipeline(save_checkpoint(path, pipe.model.state_dict(), card), device="cpu")


def controls(app) -> dict:
    """elem_id -> component of the settings controls."""
    ids = {"sampler", "steps", "guidance", "spacing", "eta", "extrapolation", "dynamic-threshold", "precision"}
    return {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None) in ids}


def test_controls_show_the_card_defaults(pipes, tmp_path) -> None:
    from demo.app import build_app

    pipe = with_card(pipes[0], tmp_path / "other", sampler=Sampler.DPMPP_2M, steps=7, guidance=2.5,
                     spacing=Spacing.SECTIONS, dynamic_threshold=0.9, precision=Precision.FP32)
    app = build_app(pipe, None)
    try:
        values = {k: c.value for k, c in controls(app).items()}
        assert values == {"sampler": "dpmpp_2m", "steps": 7, "guidance": 2.5, "spacing": "sections", "eta": 0.0,
                          "extrapolation": 0.8, "dynamic-threshold": 0.9, "precision": "fp32"}
    finally:
        app.close()
        app.handlers.store.cleanup()


def test_only_changed_settings_reach_generate_and_each_model_keeps_its_card(pipes, tmp_path, monkeypatch) -> None:
    """Two cards that differ: untouched controls send None, so each model runs its own card's defaults."""
    from demo.app import build_app

    scdm = with_card(pipes[0], tmp_path / "scdm", sampler=Sampler.DDIM, steps=2, eta=1.0, precision=Precision.FP32)
    sdm = with_card(pipes[1], tmp_path / "sdm", sampler=Sampler.DPMPP_2M, steps=3, precision=Precision.FP32)
    app = build_app(scdm, sdm, min_preview_interval=0.0)
    h = app.handlers
    calls = []
    real = Pipeline.generate

    def spy(self, labels, **kw):
        calls.append((self.card.name, kw))
        return real(self, labels, **kw)

    monkeypatch.setattr(Pipeline, "generate", spy)
    try:
        c = controls(app)
        assert c["sampler"].value == CARD and "card: SCDM ddim · SDM dpmpp_2m" in c["sampler"].label
        assert c["steps"].value == "" and c["steps"].placeholder == "SCDM 2 · SDM 3"  # empty: each card's value
        assert c["guidance"].value == 1.5 and c["precision"].value == "fp32"  # the cards agree
        ui = {k: v.value for k, v in c.items()}
        value = canvas_value(example_scene(0, SIZE).label, h.table, SIZE)
        out = run(h.generate_stream(value, "none", 0.0, ui["sampler"], ui["steps"], 2.0, 0, 1, ui["spacing"],
                                    ui["eta"], ui["extrapolation"], ui["dynamic-threshold"], ui["precision"]))
        assert [name for name, _ in calls] == ["tiny-scdm", "tiny-sdm"]
        for _, kw in calls:
            assert kw["settings"] == SamplingSettings(guidance=2.0)  # only the changed guidance
            assert not {"sampler", "steps", "guidance", "precision", "eta", "spacing"} & set(kw)
        doc = json.loads(Path(next(f for f in out["files"] if f.endswith("settings.json"))).read_text())
        ran = {slot: doc["models"][slot]["settings"] for slot in ("SCDM", "SDM")}
        assert (ran["SCDM"]["sampler"], ran["SCDM"]["steps"], ran["SCDM"]["eta"]) == ("ddim", 2, 1.0)
        assert (ran["SDM"]["sampler"], ran["SDM"]["steps"]) == ("dpmpp_2m", 3)
        assert ran["SCDM"]["guidance"] == ran["SDM"]["guidance"] == 2.0 and doc["requested"] == {"guidance": 2.0}
        assert "ddim, 2 steps" in out["info"] and "dpmpp_2m, 3 steps" in out["info"]
    finally:
        app.close()
        h.store.cleanup()


def test_replay_names_other_weights(handlers: Handlers, pipes, tmp_path) -> None:
    value = canvas_value(example_scene(2, SIZE).label, handlers.table, SIZE)
    out = run(handlers.generate_stream(value, "none", 0.0, "ddim", 2, 1.5, 3, 1))
    path = Path(next(f for f in out["files"] if f.endswith("settings.json")))
    other = load_pipeline(make_tiny_checkpoints(tmp_path, seed=1)[0], device="cpu")  # same card, other weights
    assert other.digest != pipes[0].digest
    line = (f"SCDM: settings.json was made by `tiny-scdm` with weights digest {pipes[0].digest}, the loaded "
            f"`tiny-scdm` has {other.digest}")
    with pytest.raises(ValueError, match=re.escape(line) + "; pass allow_other_weights=True"):
        replay(path, other)
    with pytest.warns(UserWarning, match=re.escape(line)):
        images = replay(path, other, allow_other_weights=True)
    assert images.shape == (1, SIZE, SIZE, 3)
    with pytest.raises(ValueError, match="has no SDM result"):
        replay(_only(path, "SCDM"), pipes[1])


def _only(path: Path, slot: str) -> Path:
    doc = json.loads(path.read_text())
    doc["models"] = {slot: doc["models"][slot]}
    out = path.with_name("one.json")
    out.write_text(json.dumps(doc))
    return out


def test_version_1_settings_files_still_replay(handlers: Handlers, pipes) -> None:
    """A file from an older demo (sampler, steps, guidance, one precision; no digest) replays with a notice."""
    label = example_scene(4, SIZE).label
    out = run(handlers.generate_stream(canvas_value(label, handlers.table, SIZE), "edge", 0.3, "ddim", 2, 1.5, 7, 1,
                                       precision="fp32"))
    files = {Path(f).name: Path(f) for f in out["files"]}
    old = {"version": 1, "settings": {"corruption": "edge", "severity": 0.3, "sampler": "ddim", "steps": 2,
                                      "guidance": 1.5, "seed": 7, "num_samples": 1},
           "models": {"SCDM": "tiny-scdm", "SDM": "tiny-sdm"}, "precision": "fp32", "label_file": "label.png",
           "label_sha256": label_digest(label), "edit": None,
           "reproduce": "demo.replay.replay('settings.json', scdm.load_pipeline(<model>)) -> the same images"}
    path = files["settings.json"].with_name("settings_v1.json")
    path.write_text(json.dumps(old))
    for pipe, slot in zip(pipes, ("scdm", "sdm")):
        with pytest.warns(UserWarning, match="version-1 settings file without the weights digest"):
            again = replay(path, pipe)
        assert np.array_equal(again[0], np.asarray(Image.open(files[f"{slot}_0.png"]))), slot


def test_edit_settings_json_reproduces_the_edit(handlers: Handlers, pipes) -> None:
    edited = example_scene(3, SIZE).label.astype(np.int64).copy()
    edited[40:56, 4:20] = 22  # a pond
    out = run(handlers.edit_stream(3, canvas_value(edited, handlers.table, SIZE), "ddim", 2, 1.5, 4, 1))
    files = {Path(f).name: Path(f) for f in out["files"]}
    made = np.asarray(Image.open(files["scdm_0.png"]))
    assert np.array_equal(replay(files["settings.json"], pipes[0])[0], made)
    # a version-2 file (older demos) names the example scene only: it is rebuilt
    doc = json.loads(files["settings.json"].read_text())
    assert doc["edit"]["example"] == 3 and doc["edit"]["image_file"] == "edit_image.png"
    doc.update(version=2, edit={"example": 3, "split": "test", "repainted_pixels": doc["edit"]["repainted_pixels"]})
    old = files["settings.json"].with_name("settings_v2.json")
    old.write_text(json.dumps(doc))
    assert np.array_equal(replay(old, pipes[0])[0], made)


def picture_files(tmp_path: Path, index: int, side: int = 2 * SIZE) -> tuple[Path, Path]:
    """Scene `index`'s image at `side` px (a "photo") and its label as an index PNG at the model size."""
    scene = example_scene(index, SIZE)
    picture, label = tmp_path / "photo.png", tmp_path / "photo_label.png"
    Image.fromarray(scene.image).resize((side, side), Image.Resampling.BICUBIC).save(picture)
    label.write_bytes(index_png(scene.label))
    return picture, label


def test_edit_your_own_picture_keeps_the_rest_and_replays(handlers: Handlers, pipes, tmp_path) -> None:
    picture, label = picture_files(tmp_path, 5)
    base, before, value, report = handlers.edit_source(str(picture), str(label), 0)
    assert "your picture (photo.png) with your label map (photo_label.png)" in report
    assert "picture resized 128x128 -> 64x64 px" in report and before.shape == (256, 256, 3)
    assert base.image.shape == (SIZE, SIZE, 3) and np.array_equal(base.label, example_scene(5, SIZE).label)
    edited = base.label.copy()
    edited[40:56, 4:20] = 22  # a pond
    assert handlers.edit_mask(base, canvas_value(edited, handlers.table, SIZE)).shape == (256, 256, 3)
    out = run(handlers.edit_stream(base, canvas_value(edited, handlers.table, SIZE), "ddim", 2, 1.5, 4, 1))
    files = {Path(f).name: Path(f) for f in out["files"]}
    assert {"edit_image.png", "edit_mask.png", "share.png", "settings.json"} <= set(files)
    mask = repaint_mask(base.label, edited)
    for pipe, slot in zip(pipes, ("scdm", "sdm")):
        made = np.asarray(Image.open(files[f"{slot}_0.png"]))
        assert np.array_equal(made[mask == 0], base.image[mask == 0])  # SDM Eq. 12: the rest of the picture is kept
        assert not np.array_equal(made[mask == 1], base.image[mask == 1])
        assert np.array_equal(replay(files["settings.json"], pipe)[0], made), slot  # from the PNGs beside the JSON
    assert [caption for _, caption in out["compare"]] == ["before", "SCDM after", "SDM after"]
    assert "edit of your picture (photo.png)" in out["info"]
    doc = json.loads(files["settings.json"].read_text())
    assert doc["edit"]["repainted_pixels"] == int(mask.sum()) and "example" not in doc["edit"]


def test_edit_your_picture_with_an_example_label(handlers: Handlers, tmp_path) -> None:
    picture, _ = picture_files(tmp_path, 6, side=SIZE)
    base, _, value, report = handlers.edit_source(str(picture), None, 6)
    assert np.array_equal(base.label, handlers.examples.labels[6]) and "with example 6's label" in report
    assert "resized" not in report and base.example is None
    none, before, value, report = handlers.edit_source(None, None, 2)  # no picture: the example scene itself
    assert none is None and np.array_equal(before, upscale(example_scene(2, SIZE).image)) and "example 2" in report


def test_edit_pictures_are_converted_or_refused_with_a_message(handlers: Handlers, tmp_path) -> None:
    _, label = picture_files(tmp_path, 1)
    image = example_scene(1, SIZE).image

    def load(im: Image.Image, name: str) -> str:
        path = tmp_path / name
        im.save(path)
        return handlers.edit_source(str(path), str(label), 0)

    rgba = np.concatenate([image, np.full((SIZE, SIZE, 1), 255, np.uint8)], -1)
    rgba[:8, :8, 3] = 0
    base, _, _, report = load(Image.fromarray(rgba), "rgba.png")
    assert "2% of the RGBA picture is transparent: put on white" in report and (base.image[:8, :8] == 255).all()
    assert np.array_equal(base.image[8:], image[8:])
    assert "a greyscale picture: converted to RGB" in load(Image.fromarray(image).convert("L"), "grey.png")[3]
    assert "a palette picture: converted to RGB" in load(Image.fromarray(image).convert("P"), "pal.png")[3]
    with pytest.raises(ValueError, match="16-bit single-channel image .*upload it as the label"):
        load(Image.fromarray(np.full((SIZE, SIZE), 300, np.uint16)), "deep.png")
    with pytest.raises(ValueError, match="is 128x64 px but its label is 64x64 px: .*same aspect ratio"):
        load(Image.fromarray(np.concatenate([image, image], 1)), "wide.png")
    none, _, _, report = handlers.edit_source(None, str(label), 0)  # the picture may come next: the example meanwhile
    assert none is None and "a label map without its picture" in report and "**Editing:** example 0" in report
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        handlers.edit_source(str(tmp_path / "text.png"), str(label), 0)


def test_generate_refuses_bad_input_before_sampling(handlers: Handlers) -> None:
    value = canvas_value(example_scene(0, SIZE).label, handlers.table, SIZE)
    with pytest.raises(ValueError, match="unknown corruption"):
        next(handlers.generate_stream(value, "nonsense", 0.3, "ddim", 3, 1.5, 0, 1))
    with pytest.raises(ValueError, match="the canvas is empty"):
        next(handlers.generate_stream(None, "none", 0.3, "ddim", 3, 1.5, 0, 1))


def test_edit_regenerates_only_the_repainted_region(handlers: Handlers) -> None:
    scene = example_scene(2, SIZE)
    with pytest.raises(ValueError, match="nothing was repainted"):
        next(handlers.edit_stream(2, canvas_value(scene.label, handlers.table, SIZE), "ddim", 2, 1.5, 0, 1))
    edited = scene.label.astype(np.int64).copy()
    edited[8:24, 8:24] = 5  # paint a tree
    out = run(handlers.edit_stream(2, canvas_value(edited, handlers.table, SIZE), "ddim", 3, 1.5, 0, 1))
    mask = repaint_mask(scene.label.astype(np.int64), edited)
    assert out["mask"].shape == (256, 256, 3) and "regenerated" in out["info"]
    img = np.asarray(Image.open(next(f for f in out["files"] if f.endswith("scdm_0.png"))))
    keep = mask == 0
    assert np.array_equal(img[keep], scene.image[keep])  # SDM Eq. 12: known pixels are kept exactly
    assert not np.array_equal(img[~keep], scene.image[~keep])


def test_repaint_mask_grows_by_one_pixel() -> None:
    a = np.zeros((5, 5), np.int64)
    b = a.copy()
    b[2, 2] = 1
    assert repaint_mask(a, b).sum() == 5 and repaint_mask(a, b, grow=0).sum() == 1


def test_api_generate_returns_model_resolution_images(handlers: Handlers, tmp_path) -> None:
    p = tmp_path / "label.png"
    p.write_bytes(index_png(example_scene(3, SIZE).label))
    scdm, sdm, info = handlers.generate_api(str(p), "none", 0.0, "ddim", 2, 1.0, 0, 2)
    assert len(scdm) == len(sdm) == 2 and scdm[0][0].shape == (SIZE, SIZE, 3) and scdm[0][1] == "SCDM #0"
    assert "8-bit index PNG" in info
    with pytest.raises(ValueError, match="no label map file"):
        handlers.generate_api(None, "none", 0.0, "ddim", 2, 1.0, 0, 2)


def test_refresh_shows_label_corruption_and_label_diffusion(handlers: Handlers) -> None:
    value = canvas_value(example_scene(0, SIZE).label, handlers.table, SIZE)
    decoded, report, corrupted, note, yt, keep, curves = handlers.refresh(value, "random", 0.5, 0, 900)
    assert decoded.shape == corrupted.shape == yt.shape == (256, 256, 3)
    assert not np.array_equal(decoded, corrupted) and "changed" in note
    assert "keep probability" in keep and "t = 900" in keep
    assert set(curves.columns) == {"t", "keep probability", "class"}
    decoded, report, *_ = handlers.refresh(None, "none", 0.0, 0, 0)
    assert "⚠️ the canvas is empty" in report
    *_, note, _, _, _ = handlers.refresh(value, "nonsense", 0.5, 0, 0)
    assert "⚠️ unknown corruption" in note


def test_sdm_only_demo(pipes) -> None:
    h = Handlers(Models.of(pipes[1]), min_preview_interval=0.0)
    try:
        value = canvas_value(example_scene(0, SIZE).label, h.table, SIZE)
        *_, keep, _ = h.refresh(value, "none", 0.0, 0, 500)
        assert "does not diffuse labels" in keep
        out = run(h.generate_stream(value, "none", 0.0, "ddim", 2, 1.5, 0, 1))
        assert out["SCDM gallery"] == [] and len(out["SDM gallery"]) == 1 and "**SCDM**: no model loaded" in out["info"]
    finally:
        h.store.cleanup()


def test_closing_the_stream_stops_the_sampler(handlers: Handlers) -> None:
    pipe = handlers.models.scdm
    stream = stream_generate(pipe, example_scene(0, SIZE).label,
                             Request(num_samples=1, sampling=SamplingSettings(steps=200)), handlers.table,
                             min_interval=0.0)
    first = next(stream)
    assert isinstance(first, Preview) and first.x0.shape == (1, SIZE, SIZE, 3)
    start = time.perf_counter()
    stream.close()
    assert time.perf_counter() - start < 20
    assert not any(t.name == "scdm-demo-sampler" and t.is_alive() for t in threading.enumerate())


def test_stream_reraises_sampler_errors(handlers: Handlers) -> None:
    bad = np.full((SIZE, SIZE), 99)  # not a class: the pipeline refuses it inside the worker
    with pytest.raises(ValueError, match="not classes of this model"):
        list(stream_generate(handlers.models.scdm, bad, Request(num_samples=1, sampling=SamplingSettings(steps=2)),
                             handlers.table))


def test_a_checkpoint_with_another_label_space(tmp_path) -> None:
    """An ADE20K-encoded model (151 classes, no palette in its card): VOC colours, examples still load."""
    from dataclasses import replace as dc_replace

    from demo.app import build_app
    from demo.tiny import tiny_card
    from scdm.checkpoint import save_checkpoint
    from scdm.config import LabelDiffusionConfig, LabelSchedule
    from scdm.presets import ade20k_labels
    from scdm.unet import UNet

    base = tiny_card(LabelSchedule.CLASSWISE)
    card = dc_replace(base, labels=ade20k_labels(), name="tiny-ade20k",
                      unet=dc_replace(base.unet, label_channels=151),
                      label_diffusion=LabelDiffusionConfig(LabelSchedule.CLASSWISE, kappa=(2.0,) * 151))
    path = save_checkpoint(tmp_path / "ade", UNet(card.unet).state_dict(), card)
    pipe = load_pipeline(path, device="cpu")
    app = build_app(pipe, None)
    h = app.handlers
    try:
        assert len(h.table.raw_ids) == 151 and h.examples_available()
        label = np.zeros((SIZE, SIZE), np.int64)
        label[:32] = 3  # sky
        label[32:] = 150  # the last ADE20K class
        p = tmp_path / "ade.png"
        p.write_bytes(index_png(label))
        scdm, sdm, info = h.generate_api(str(p), "edge", 0.2, "ddim", 1, 1.0, 0, 1)
        assert len(scdm) == 1 and sdm == [] and "**SDM**: no model loaded" in info
    finally:
        app.close()
        h.store.cleanup()
