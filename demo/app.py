"""The Gradio page: paint or upload a label, corrupt it, and compare SCDM and SDM side by side.

`build_app(scdm, sdm)` lays the page out and wires events to `Handlers`; `launch` serves it through
Gradio's queue with an upload size limit. User mistakes become `gr.Error` messages, never stack traces.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import gradio as gr

from scdm.config import Precision, Sampler, Spacing
from scdm.pipeline import Pipeline
from scdm.settings import SamplingSettings

from .canvas import blank_label, canvas_value, make_brush, make_editor
from .classes import LEGEND_OPEN_MAX, choice_of, class_choices, first_brush_id, hex_color, legend_html, parse_class
from .handlers import Handlers, describe_settings
from .models import Models
from .labelmap import MAX_FILE_BYTES, MAX_SIDE, MIN_SIDE
from .live import Live
from .runner import RunPlan
from .noise import corruption_choices, describe
from .resegment import AUTO, OFF
from .settings import CARD, MAX_SAMPLES, MAX_SEED, Controls, Request, plain
from .views import DISPLAY_SIDE

log = logging.getLogger(__name__)

UI_MAX_STEPS = 100  # the slider's range (wider when a card's default is above it); the API accepts settings.MAX_STEPS
# Sampling controls: name -> (title, choices) for dropdowns, (title, low, high, step) for numbers.
CHOICES = {"sampler": ("Sampler", [s.value for s in Sampler]),
           "spacing": ("Timestep spacing", [s.value for s in Spacing]),
           "precision": ("Precision", [p.value for p in Precision])}
NUMBERS = {"steps": ("Steps", 1, UI_MAX_STEPS, 1), "guidance": ("Guidance", 0.0, 10.0, 0.1),
           "eta": ("DDIM eta", 0.0, 1.0, 0.05), "extrapolation": ("x̂₀ extrapolation", 0.0, 2.0, 0.05),
           "dynamic_threshold": ("Dynamic threshold", 0.0, 0.995, 0.005)}
CSS = """
.scdm-legend {display: flex; flex-wrap: wrap; gap: 4px 12px; font-size: 0.85em}
.scdm-swatch i {display: inline-block; width: 14px; height: 14px; margin-right: 4px; vertical-align: middle;
                border: 1px solid #8888}
.scdm-pixel img {image-rendering: pixelated}
.scdm-hidden {display: none !important}
"""
# The paint canvas and the server (Gradio 6.31's ImageEditor is costly to read):
# - once the editor has been an input or output of a server event, Gradio exports it (fetching and uploading its
#   images again) for every status message of every event, e.g. every streamed preview of Refine; so no server event
#   reads or writes it: in-page events copy its composite out to a hidden image that the server reads (COPY_COMPOSITE),
#   copy a hidden image that the server writes in (LOAD_CANVAS) and set the brush (`_class_picker`);
# - listening to its `change` or `input` exports it twice per stroke and misses the first stroke; instead the page
#   clicks a hidden button after every stroke (a pointer pressed on the canvas is released, WATCH_CANVAS) and after
#   every programmatic change, and that click copies the composite out once;
# - the editor exports each image with `canvas.toBlob`, which Chromium encodes in an idle period of the page; the
#   canvas's render loop keeps the page busy for ~0.4 s after a stroke, so the first export waited that long (measured
#   in headless chromium: 420 ms for the first of three 256 px PNGs, 2-7 ms for the others). The page encodes PNGs at
#   once instead (`toDataURL`: the same lossless PNG, SYNC_TO_BLOB).
CANVAS_CHANGED = "canvas-changed"
CLICK_CHANGED = f"() => document.getElementById('{CANVAS_CHANGED}')?.click()"
COPY_COMPOSITE = "(value) => value?.composite ?? value?.background ?? null"
LOAD_CANVAS = "(image) => image ? {background: image, layers: [], composite: image} : undefined"
SYNC_TO_BLOB = """
  const toBlob = HTMLCanvasElement.prototype.toBlob;
  HTMLCanvasElement.prototype.toBlob = function (callback, type, quality) {
    let url;
    try { url = type && type !== 'image/png' ? null : this.toDataURL('image/png'); } catch (e) { url = null; }
    if (!url) return toBlob.call(this, callback, type, quality);  // other formats, tainted canvases
    const bytes = atob(url.slice(url.indexOf(',') + 1));
    const buffer = new Uint8Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) buffer[i] = bytes.charCodeAt(i);
    const blob = new Blob([buffer], {type: 'image/png'});
    setTimeout(() => callback(blob), 0);
  };
"""
WATCH_CANVAS = f"""() => {{{SYNC_TO_BLOB}
  let down = false;
  document.addEventListener('pointerdown', e => {{ down = !!e.target.closest('#canvas'); }}, true);
  document.addEventListener('pointerup', () => {{ if (down) {{ down = false; setTimeout({CLICK_CHANGED}, 0); }} }},
                            true);
}}"""

INTRO = """# Robust semantic image synthesis: SCDM vs SDM
Paint a rough scene (or upload a label map, or pick an example), optionally corrupt it the way a careless
annotator would, and compare the robust **SCDM** (label diffusion) with the standard **SDM** on the same label.
"""


def _as_gr_error(e: BaseException) -> gr.Error:
    """A user-facing error: ValueErrors verbatim, anything else logged and summarised."""
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, ValueError):
        return gr.Error(str(e))
    log.exception("demo handler failed")
    return gr.Error(f"internal error ({type(e).__name__}); the server is still running, details are in its log")


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler so that every exception reaches the browser as a clear gr.Error."""
    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - the server must keep serving
            raise _as_gr_error(e) from None
    return wrapper


def guarded_stream(fn: Callable[..., Iterator[dict[str, Any]]], targets: dict[str, Any]) -> Callable[..., Any]:
    """Wrap a generator of {name: value} updates into one of {component: value} with clear errors."""
    @functools.wraps(fn)
    def wrapper(*args: Any) -> Iterator[dict[Any, Any]]:
        try:
            for update in fn(*args):
                yield {targets[k]: v for k, v in update.items() if k in targets}
        except Exception as e:  # noqa: BLE001
            raise _as_gr_error(e) from None
    return wrapper


@dataclass(frozen=True)
class Settings:
    """The shared sampler controls above the tabs."""

    num_samples: Any
    seed: Any
    sampling: dict[str, Any]  # settings.CONTROLS name -> component

    def inputs(self) -> list[Any]:
        """In the order `Handlers` takes them: sampler, steps, guidance, seed, samples, spacing, eta,
        extrapolation, dynamic threshold, precision."""
        s = self.sampling
        return [s["sampler"], s["steps"], s["guidance"], self.seed, self.num_samples, s["spacing"], s["eta"],
                s["extrapolation"], s["dynamic_threshold"], s["precision"]]


@dataclass(frozen=True)
class Results:
    """One model column pair: streamed previews, galleries, info text and downloads."""

    targets: dict[str, Any]  # update name (as `Handlers` yields it) -> component


def _initial(c: Controls, name: str) -> Any:
    """A control's starting value: the shown setting, or "each card's default" (CARD / an empty box)."""
    shown = c.shown(name)
    return plain(shown) if shown is not None else (CARD if name in CHOICES else "")


def _control(c: Controls, name: str, device_type: str) -> Any:
    """One sampling control showing the cards' default (or the server's setting); see `settings.Controls`."""
    shown, cards, elem_id = c.shown(name), c.card_values(name), name.replace("_", "-")
    server = getattr(c.base, name) is not None
    if name in CHOICES:
        title, values = CHOICES[name]
        if name == "precision" and device_type != "cuda":
            values = [v for v in values if v != Precision.FP16.value or v == plain(shown)]  # fp16 needs a GPU
        if shown is None:
            values = [("each card's default", CARD), *values]
        label = f"{title} (server setting; card: {cards})" if server else f"{title} (card: {cards})"
        return gr.Dropdown(values, value=_initial(c, name), label=label, elem_id=elem_id)
    title, low, high, step = NUMBERS[name]
    if shown is None:  # the cards differ: an empty box keeps each model's own default (a Number box shows 0)
        return gr.Textbox("", label=f"{title} (empty: each card's default)", placeholder=cards, elem_id=elem_id)
    label = f"{title} (server setting; card: {cards})" if server else f"{title} (card: {cards})"
    return gr.Slider(low, max(high, shown), value=shown, step=step, label=label, elem_id=elem_id)


def _settings_row(h: Handlers) -> Settings:
    """Samples, sampler, steps, guidance and seed; the other sampling settings in an accordion."""
    c, device_type = h.controls, h.models.primary.device.type
    with gr.Row(equal_height=True):
        n = gr.Slider(1, MAX_SAMPLES, value=Request().num_samples, step=1, label="Samples per model",
                      elem_id="samples")
        sampling = {name: _control(c, name, device_type) for name in ("sampler", "steps", "guidance")}
        with gr.Column(min_width=200):
            seed = gr.Number(Request().seed, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", elem_id="seed")
            dice = gr.Button("🎲 Randomize", size="sm", elem_id="randomize")
    with gr.Accordion("More sampling settings", open=False, elem_id="more-settings"):
        with gr.Row(equal_height=True):
            for name in ("spacing", "eta", "extrapolation", "dynamic_threshold", "precision"):
                sampling[name] = _control(c, name, device_type)
        with gr.Row():
            gr.Markdown(_card_summary(h), elem_id="card-defaults")
            reset = gr.Button("↺ Card defaults", size="sm", scale=0, min_width=140, elem_id="reset-settings")
    dice.click(lambda: random.randint(0, MAX_SEED), None, [seed], api_visibility="private")
    names = list(sampling)
    reset.click(lambda: [_initial(c, k) for k in names], None, [sampling[k] for k in names], api_visibility="private")
    return Settings(n, seed, sampling)


def _card_summary(h: Handlers) -> str:
    """Markdown: what each model runs when no control is changed, resolved on this device."""
    lines = ["Untouched controls keep each model's card default; a control you change applies to both models. "
             "Eta only matters to DDIM; x̂₀ extrapolation is the ancestral sampler's unless you set it; the dynamic "
             "threshold is a quantile of |x̂₀| (0 clips to [-1, 1]). With the controls as they are, the models run:"]
    for slot, pipe in h.models.slots():
        if pipe is not None:
            card = pipe.card.sampler.precision.value
            lines.append(f"- **{slot}** `{pipe.card.name}` on {pipe.device.type}: "
                         f"{describe_settings(pipe.resolve(h.sampling))} (card precision `{card}`)")
    return "\n".join(lines)


def _model_column(slot: str, pipe: Pipeline | None, prefix: str) -> dict[str, Any]:
    title = f"### {slot}" + (f" — `{pipe.card.name}`" if pipe is not None else " — not loaded")
    sub = "robust: label diffusion" if slot == "SCDM" else "standard: clean-label conditioning"
    with gr.Column():
        gr.Markdown(f"{title}\n{sub}")
        preview = gr.Image(label=f"{slot}: x̂₀ (top) and y_t (bottom) while sampling", interactive=False,
                           format="png", elem_classes="scdm-pixel", elem_id=f"{prefix}{slot.lower()}-preview")
        gallery = gr.Gallery(label=f"{slot} samples", columns=4, rows=1, height=210, format="png",
                             interactive=False, elem_id=f"{prefix}{slot.lower()}-gallery", elem_classes="scdm-pixel")
        scores = gr.Markdown(elem_id=f"{prefix}{slot.lower()}-scores")
        reseg = gr.Gallery(label=f"{slot} re-segmented: magenta = painted as the corruption, green = as intended "
                                 f"(without a corruption: the segmentation)", columns=4, rows=1, height=210,
                           format="png", interactive=False, elem_id=f"{prefix}{slot.lower()}-reseg",
                           elem_classes="scdm-pixel")
    return {f"{slot} preview": preview, f"{slot} gallery": gallery, f"{slot} scores": scores, f"{slot} reseg": reseg}


def _results(models: Models, prefix: str, files_label: str) -> Results:
    """SCDM and SDM columns side by side, then the info text and the downloads."""
    with gr.Row():
        columns = {**_model_column("SCDM", models.scdm, prefix), **_model_column("SDM", models.sdm, prefix)}
    info = gr.Markdown(label="info", elem_id=f"{prefix}info")
    files = gr.File(label=files_label, file_count="multiple", interactive=False, elem_id=f"{prefix}downloads",
                    height=180)
    return Results({**columns, "info": info, "files": files})


def _class_picker(h: Handlers, editor: Any, elem_id: str) -> Any:
    """A dropdown searched by typing a class name; picking one makes it the editor's brush colour (in the page: no
    server event writes an editor, see LOAD_CANVAS)."""
    table = h.table
    picker = gr.Dropdown(class_choices(table), value=choice_of(table, first_brush_id(table)), filterable=True,
                         label=f"Brush class (type to search {len(table.raw_ids)} classes)", elem_id=elem_id)
    brushes = {choice: dataclasses.asdict(make_brush(table, h.models.size, parse_class(table, choice)))
               for choice in class_choices(table)}
    picker.input(None, [picker], [editor], js=f"(choice) => {{ const b = {json.dumps(brushes)}[choice]; "
                                              f"return b ? {{__type__: 'update', brush: b}} : undefined; }}")
    return picker


def _legend(h: Handlers) -> None:
    """Every class's colour, name and raw id; collapsed for big label spaces."""
    n = len(h.table.raw_ids)
    with gr.Accordion(f"Class colours ({n})", open=n <= LEGEND_OPEN_MAX, elem_id="legend"):
        gr.HTML(legend_html(h.table))


def _label_inputs(h: Handlers, start: Any) -> tuple[Any, Any, Any]:
    """Paint / Upload / Examples sub-tabs that all feed one canvas; returns the canvas and its hidden "changed"
    button (clicked by the page after every stroke and every programmatic change, see WATCH_CANVAS)."""
    table, size = h.table, h.models.size
    with gr.Tabs():
        with gr.Tab("Paint", id="paint"):
            editor = make_editor(table, size, start, label="Canvas: paint with the brush class", elem_id="canvas")
            _class_picker(h, editor, "brush-class")
            with gr.Row():
                fill_class = gr.Dropdown(class_choices(table), value=choice_of(table, table.fill_id), filterable=True,
                                         label="Fill the whole canvas with", scale=3, elem_id="fill-class")
                fill_btn = gr.Button("Fill canvas", size="sm", scale=1, elem_id="fill")
        with gr.Tab("Upload", id="upload"):
            upload = gr.File(label="Label map", file_types=["image"], type="filepath", elem_id="upload")
            gr.Markdown(f"An index PNG of raw dataset ids (8 or 16 bit), a palette PNG, or a colour-coded image in "
                        f"the palette below (JPEG works, PNG is exact). {MIN_SIDE}..{MAX_SIDE} px per side and at "
                        f"most {MAX_FILE_BYTES // 2**20} MiB; resized to {size} px.")
            upload_report = gr.Markdown(elem_id="upload-report")
        with gr.Tab("Examples", id="examples"):
            examples = gr.Gallery(h.example_gallery(), columns=4, allow_preview=False, elem_id="examples",
                                  label=h.examples.title, visible=h.examples_available())
            if not h.examples_available():
                gr.Markdown(h.examples.title, elem_id="no-examples")
    _legend(h)

    def on_upload(path: str | None) -> tuple[Any, str, None]:
        """Decode into the canvas; the file box is emptied so that another file can be dropped."""
        try:
            value, report = h.upload(path)
            return value["background"], report, None
        except ValueError as e:
            gr.Warning(str(e))
            return gr.skip(), f"⚠️ {e}", None

    def on_example(evt: gr.SelectData) -> Any:
        return h.example(evt.index)["background"]

    def on_fill(choice: str) -> Any:
        return h.fill(choice)["background"]

    changed = gr.Button("canvas changed", elem_id=CANVAS_CHANGED, elem_classes="scdm-hidden")
    first = canvas_value(start if start is not None else blank_label(table, size), table, size)["composite"]
    composite = gr.Image(first, type="numpy", image_mode="RGBA", format="png", interactive=False,
                         elem_id="canvas-composite", elem_classes="scdm-hidden")
    changed.click(None, [editor], [composite], js=COPY_COMPOSITE)
    loaded = gr.Image(None, type="numpy", image_mode="RGBA", format="png", interactive=False, elem_id="canvas-loaded",
                      elem_classes="scdm-hidden")
    for event in (upload.upload(guarded(on_upload), [upload], [loaded, upload_report, upload],
                                api_visibility="private"),
                  fill_btn.click(guarded(on_fill), [fill_class], [loaded], api_visibility="private"),
                  examples.select(guarded(on_example), None, [loaded], api_visibility="private")):
        event.then(None, [loaded], [editor], js=LOAD_CANVAS).then(None, None, None, js=CLICK_CHANGED)
    return editor, changed, composite


def _draw_tab(h: Handlers, live: Live, settings: Settings, defaults: Request, start: Any,
              gen_kw: dict) -> dict[str, Any]:
    """Label in, corruption, generate, results; returns the components the live refresh reads and writes."""
    with gr.Row():
        with gr.Column(scale=3):
            editor, changed, composite = _label_inputs(h, start)
        with gr.Column(scale=2):
            live_row = _live_row(h, live)  # beside the canvas: what the models make of it while the user paints
            decoded = gr.Image(label="Label the models receive (before corruption)", interactive=False, format="png",
                               elem_id="decoded", height=DISPLAY_SIDE + 40)
            canvas_report = gr.Markdown(elem_id="canvas-report")
            with gr.Row():
                corruption = gr.Dropdown(corruption_choices(), value=defaults.corruption, label="Corruption",
                                         elem_id="corruption")
                severity = gr.Slider(0.0, 1.0, value=defaults.severity, step=0.05, label="Severity",
                                     elem_id="severity")
            corruption_note = gr.Markdown(describe(defaults.corruption))
            corrupted = gr.Image(label="What a careless user drew (the models get this)", interactive=False,
                                 format="png", elem_id="corrupted", height=DISPLAY_SIDE + 40)
    go = gr.Button("Refine: generate with SCDM and SDM (the full sampler)", variant="primary", elem_id="generate")
    res = _results(h.models, "", "Downloads: images, label (index PNG), share.png (what you saw, with the scores), "
                                 "settings JSON (replays the images)")

    def on_generate(image: Any, *rest: Any) -> Iterator[dict[str, Any]]:
        yield from h.generate_stream(None if image is None else {"composite": image}, *rest)

    go.click(None, [editor], [composite], js=COPY_COMPOSITE).then(
        guarded_stream(on_generate, res.targets), [composite, corruption, severity, *settings.inputs()],
        list(res.targets.values()), api_visibility="private", **gen_kw)
    return {"editor": editor, "changed": changed, "composite": composite, "corruption": corruption,
            "severity": severity, "decoded": decoded,
            "canvas_report": canvas_report, "corrupted": corrupted, "corruption_note": corruption_note,
            "results": res, **live_row}


def _live_row(h: Handlers, live: Live) -> dict[str, Any]:
    """The live switch and one few-step image per model, redrawn while the user paints (`live.Live`)."""
    with gr.Row(equal_height=True):
        images = [gr.Image(label=f"{slot} live", interactive=False, format="png", elem_id=f"live-{slot.lower()}",
                           height=DISPLAY_SIDE // 2 + 60, min_width=120) for slot, _ in h.models.slots()]
    on = gr.Checkbox(True, label=f"Live: redraw while you paint ({live.describe()}, one image per model)",
                     elem_id="live-on")
    info = gr.Markdown(elem_id="live-info")
    return {"live_on": on, "live_out": [*images, info]}


def _edit_tab(h: Handlers, settings: Settings, start: Any, gen_kw: dict) -> None:
    """Pick an example or upload a picture with its label, repaint the label, regenerate only the repainted pixels
    and compare before / after."""
    size, n = h.models.size, len(h.examples.labels)
    gr.Markdown("Repaint part of a picture's label and regenerate only the repainted region; the rest of the picture "
                "is kept (SDM's semantic editing, Eq. 12). Start from an example scene, or upload your own picture "
                "with its label map (or with the label of the example picked below).")
    _, image0, _, report0 = h.edit_source(None, None, 0)
    index = gr.Slider(0, max(n - 1, 1), value=0, step=1, label="Example" + ("" if h.edit_available() else " label"),
                      visible=n > 0, elem_id="edit-example")
    with gr.Accordion("Your own picture", open=not h.edit_available(), elem_id="edit-own"):
        with gr.Row():
            picture = gr.File(label="Picture (RGB PNG or JPEG)", file_types=["image"], type="filepath",
                              elem_id="edit-picture")
            label_file = gr.File(label="Its label map (else the example's label)", file_types=["image"],
                                 type="filepath", elem_id="edit-label")
        gr.Markdown(f"The label map is read like an upload in the Draw tab. Both are brought to {size}x{size} px; a "
                    f"picture of another size with the label's aspect ratio is resized with a notice, another aspect "
                    f"ratio is refused. RGBA, greyscale and palette pictures are converted to RGB (transparency on "
                    f"white); 16-bit and float images are refused.")
    report = gr.Markdown(report0, elem_id="edit-report")
    own = gr.State(None)  # the user's picture (editing.EditBase); None = the example
    with gr.Row():
        scene_img = gr.Image(image0, label="Picture (before)", interactive=False, format="png", elem_id="edit-before")
        editor = make_editor(h.table, size, start, label="Repaint the label", elem_id="edit-canvas")
        mask_img = gr.Image(label="Region to regenerate", interactive=False, format="png", elem_id="edit-mask")
    _class_picker(h, editor, "edit-brush-class")
    go = gr.Button("Regenerate the repainted region", variant="primary", elem_id="edit-generate")
    compare = gr.Gallery(label="Before / after (the first sample of each model)", columns=3, rows=1, height=210,
                         format="png", interactive=False, elem_id="edit-compare", elem_classes="scdm-pixel")
    res = _results(h.models, "edit-", "Downloads: images, the edit's picture and region, share.png, settings JSON")

    def on_source(pic: str | None, lab: str | None, i: float) -> tuple[Any, Any, Any, None, str]:
        base, image, value, text = h.edit_source(pic, lab, int(i))
        return base, image, value if value is not None else gr.skip(), None, text

    def on_mask(i: float, base: Any, value: Any) -> Any:
        return h.edit_mask(base if base is not None else int(i), value)

    def on_edit(i: float, base: Any, value: Any, *sampling: Any) -> Iterator[dict[str, Any]]:
        yield from h.edit_stream(base if base is not None else int(i), value, *sampling)

    gr.on([index.change, picture.upload, picture.clear, label_file.upload, label_file.clear], guarded(on_source),
          [picture, label_file, index], [own, scene_img, editor, mask_img, report], api_visibility="private")
    # not `editor.change`: listening to it here left the draw tab's canvas read as empty at page load (e2e test)
    gr.on([editor.input, editor.apply], guarded(on_mask), [index, own, editor], [mask_img], api_visibility="private",
          show_progress="hidden", trigger_mode="always_last", concurrency_limit=4)
    targets = {**res.targets, "mask": mask_img, "compare": compare}
    go.click(guarded_stream(on_edit, targets), [index, own, editor, *settings.inputs()], list(targets.values()),
             api_visibility="private", **gen_kw)


def _explainer_tab(h: Handlers) -> dict[str, Any]:
    """A slider over t and one draw of y_t for the current label, with gamma_t(c) per class."""
    pipe, table = h.models.primary, h.table
    T = pipe.card.diffusion.num_timesteps
    gr.Markdown(
        "SCDM trains and samples with a *diffused* label y_t: at step t each pixel of class c keeps its label "
        "with probability gamma_t(c) and otherwise becomes [MASK] (grey checkerboard). Large, common classes are "
        "dropped early and small, rare ones late, so the model learns to fill in and correct labels: a careless "
        f"drawing looks like an early y_t. This shows one draw of y_t for the current (corrupted) label under "
        f"`{pipe.card.name}`'s schedule.")
    t = gr.Slider(0, T, value=T // 2, step=10, label="t", elem_id="t")
    with gr.Row():
        y_t = gr.Image(label="y_t", interactive=False, format="png", elem_id="yt")
        keep = gr.Markdown()
    curves = gr.LinePlot(x="t", y="keep probability", color="class", label="gamma_t(c) per class", height=300,
                         color_map={n: hex_color(c) for n, c in zip(table.names, table.colors)})
    return {"t": t, "y_t": y_t, "keep": keep, "curves": curves}


def _api(h: Handlers, res: Results, gen_kw: dict) -> None:
    """`/generate`: a label map file and plain values (hidden components, validated by `Handlers`)."""
    with gr.Group(visible=False):
        inputs = [gr.File(type="filepath", label="label_map"), gr.Textbox(label="corruption"),
                  gr.Number(label="severity"), gr.Textbox(label="sampler"), gr.Number(label="steps"),
                  gr.Number(label="guidance"), gr.Number(label="seed"), gr.Number(label="num_samples"),
                  # optional: empty/None = each model's card default
                  gr.Textbox("", label="spacing"), gr.Number(None, label="eta"), gr.Number(None, label="extrapolation"),
                  gr.Number(None, label="dynamic_threshold"), gr.Textbox("", label="precision")]
        button = gr.Button("generate (API)")
    outputs = [res.targets["SCDM gallery"], res.targets["SDM gallery"], res.targets["info"]]
    button.click(guarded(h.generate_api), inputs, outputs, api_name="generate", **gen_kw)


def build_app(scdm: Pipeline | None, sdm: Pipeline | None, *, sampling: SamplingSettings | None = None,
              min_preview_interval: float = 0.5, concurrency: int = 1, segmenter: str | None = AUTO,
              refine: RunPlan = RunPlan(), live: RunPlan = RunPlan()) -> gr.Blocks:
    """The demo page for one or two pipelines (the SCDM and SDM slots are chosen by each model's card).

    The sampling controls start at the models' card defaults on any device; `sampling` sets some for the whole
    server (e.g. `SamplingSettings(precision="fp32")`; None fields stay with the cards). A ValueError if a model
    cannot run them here. `segmenter` re-segments the samples (`resegment.choose_segmenter`: AUTO is the bench's
    segmenter for the models' dataset when it is on disk, "none" turns it off); one that is named is loaded here,
    so that a wrong one fails before the page is served. `refine` and `live` say how the two models share the
    CPU for Refine (and the edit tab) and for the live images (`runner.RunPlan`; default: side by side).
    """
    models = Models.of(*[p for p in (scdm, sdm) if p is not None])
    device = models.primary.device
    h = Handlers(models, min_preview_interval=min_preview_interval, sampling=sampling or SamplingSettings(),
                 segmenter=segmenter, refine=refine)
    if segmenter not in (None, AUTO, OFF):
        h.resegmenter.load()
    live_images = Live(h, plan=live)
    for slot, p in models.slots():
        if p is not None:
            p.resolve(h.sampling)  # a setting this device cannot run fails here, not at the first request
            log.info("%s %s: weights digest %s", slot, p.card.name, p.digest)  # hashed once, for settings.json
    defaults = Request()
    start = h.examples.labels[0] if h.examples_available() else None
    # generations share one queue slot; their progress shows in the info line and the previews, not in overlays
    gen_kw = dict(concurrency_id="models", concurrency_limit=concurrency, show_progress="hidden")

    with gr.Blocks(title="SCDM vs SDM", delete_cache=(3600, 3600)) as app:
        app.handlers, app.live = h, live_images  # for tests and for cleanup at exit
        app.load(None, None, None, js=WATCH_CANVAS)
        gr.Markdown(INTRO + "\nModels: " + ", ".join(f"**{k}** `{v}`" for k, v in models.names().items())
                    + f" · {models.size} px · {len(h.table.class_ids)} classes · {device.type}")
        settings = _settings_row(h)
        with gr.Tabs():
            with gr.Tab("Draw & generate", id="draw"):
                draw = _draw_tab(h, live_images, settings, defaults, start, gen_kw)
            with gr.Tab("Edit a picture", id="edit"):
                _edit_tab(h, settings, start, gen_kw)
            with gr.Tab("Label Diffusion", id="explainer"):
                ld = _explainer_tab(h)
        _api(h, draw["results"], gen_kw)

        _wire_label_views(app, h, live_images, draw, settings, ld)
    return app


def _wire_label_views(app: gr.Blocks, h: Handlers, live: Live, draw: dict[str, Any], settings: Settings,
                      ld: dict[str, Any]) -> None:
    """Whenever the canvas or a knob changes: the label views (decoded, corrupted, diffused), then the live images.

    An unqueued mark comes first and returns at once (for a stroke: when the page clicks the canvas's hidden button,
    WATCH_CANVAS): it stops the session's running live images at their next step. Then one event reads the canvas's
    composite (copied out by the page), starts the live images, shows the label views while they sample, then the
    images; `always_last` keeps at
    most one such event waiting per session, and it reads the newest composite and knobs when it starts.
    """
    views = {"decoded": draw["decoded"], "report": draw["canvas_report"], "corrupted": draw["corrupted"],
             "note": draw["corruption_note"], "y_t": ld["y_t"], "keep": ld["keep"], "curves": ld["curves"]}
    images, info = draw["live_out"][:-1], draw["live_out"][-1]
    targets = {**views, **{f"live {k}": c for k, c in enumerate(images)}, "live info": info}

    def on_mark(request: gr.Request) -> None:
        live.mark(request.session_hash or "")

    def on_change(image: Any, corruption: Any, severity: Any, seed: Any, t: Any, on: bool,
                  request: gr.Request) -> Iterator[dict[str, Any]]:
        value = None if image is None else {"composite": image}
        shown = dict(zip(views, h.refresh(value, corruption, severity, seed, t)))
        if not on:
            yield {**shown, "live info": "Live mode is off: press **Refine** for images."}
            return
        try:  # sampling starts before the label views go out
            job = live.start(request.session_hash or "", value, corruption, severity, seed)
        except ValueError as e:
            yield {**shown, "live info": f"⚠️ Live: {e}"}
            return
        yield shown
        out = job.result()
        if out is not None:  # None: superseded (the event with the newest input is next) or already on screen
            yield {**{f"live {k}": im for k, im in enumerate(out.images.values())}, "live info": out.info}

    knobs = [draw["corruption"].change, draw["severity"].release, settings.seed.change, ld["t"].release,
             draw["live_on"].change, app.load]
    gr.on([draw["changed"].click, *knobs], on_mark, None, None, queue=False, trigger_mode="multiple",
          show_progress="hidden", api_visibility="private")
    gr.on([draw["composite"].change, *knobs], guarded_stream(on_change, targets),
          [draw["composite"], draw["corruption"], draw["severity"], settings.seed, ld["t"], draw["live_on"]],
          list(targets.values()), api_visibility="private", show_progress="hidden", trigger_mode="always_last",
          concurrency_limit=4)


def launch(app: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = None, share: bool = False,
           max_queue: int = 32, prevent_thread_lock: bool = False, quiet: bool = False) -> Any:
    """Serve through the queue (several users share the models) with the upload size limit."""
    app.queue(max_size=max_queue, default_concurrency_limit=4)
    return app.launch(server_name=host, server_port=port, share=share, max_file_size=MAX_FILE_BYTES, css=CSS,
                      show_error=False, prevent_thread_lock=prevent_thread_lock, quiet=quiet, ssr_mode=False)
