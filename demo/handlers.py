"""What each control of the demo does: pure functions of the inputs, returning arrays, markdown and file paths.

`app.py` lays the page out and wires these to events; errors here are `ValueError`s with a message for
the user (the app turns them into `gr.Error`s).
"""
from __future__ import annotations

import functools
import math
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch
from PIL import Image

from scdm.config import Sampler
from scdm.label_io import index_png
from scdm.settings import SamplingSettings

from . import explainer
from .canvas import brush_update, canvas_value, decode_canvas
from .classes import ClassTable, parse_class
from .editing import EditBase, example_base, examples_supported, picture_base, repaint_mask
from .labelmap import DecodedLabel, decode_file
from .models import Models
from .noise import NONE, apply_corruption, describe
from .resegment import AUTO, Resegmented, Resegmenter, describe_scores, fmt_miou, summary
from .runner import Inpaint, Preview, Result, RunPlan, Started, estimate_seconds, generate, stream_models
from .settings import (Controls, EditRecord, Request, SavedModel, image_digest, parse_sampling, plain,
                       settings_json)
from .share import ModelRow, share_png
from .replay import replay  # noqa: F401 - settings.json files name demo.handlers.replay
from .templates import Examples, examples_for
from .views import label_view, mask_view, strip, upscale

PREVIEW_SIDE = 128  # px per sample in the streamed previews
KEEP_REQUESTS = 64  # download folders kept on disk; older ones are deleted
LONG_RUN_SECONDS = 60.0  # expected generations longer than this wait for a second click on Generate
CONFIRM_SECONDS = 600.0  # how long that second click may come after the first


@dataclass
class OutputStore:
    """Per-request download folders under one temporary root; only the newest KEEP_REQUESTS are kept."""

    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="scdm-demo-")))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dirs: list[Path] = field(default_factory=list)

    def new_dir(self) -> Path:
        with self._lock:
            d = Path(tempfile.mkdtemp(dir=self.root, prefix="req-"))
            self._dirs.append(d)
            while len(self._dirs) > KEEP_REQUESTS:
                shutil.rmtree(self._dirs.pop(0), ignore_errors=True)
            return d

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _save_png(path: Path, image: np.ndarray) -> str:
    Image.fromarray(image).save(path)
    return str(path)


def preview_image(p: Preview, side: int = PREVIEW_SIDE) -> np.ndarray:
    """Top row x̂_0 of every sample, bottom row y_t (what the conditional branch saw), upscaled."""
    top = strip([upscale(x, side) for x in p.x0])
    if p.y_t is None:
        return top
    bottom = strip([upscale(y, side) for y in p.y_t])
    return np.concatenate([top, np.full((4, top.shape[1], 3), 255, np.uint8), bottom], 0)


def _duration(seconds: float) -> str:
    """"0.4 s", "12 s", "312 s"."""
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"


def describe_settings(r: SamplingSettings) -> str:
    """Resolved settings in one line for the info box."""
    eta = f", eta {r.eta:g}" if r.sampler == Sampler.DDIM else ""
    return (f"{r.sampler.value}, {r.steps} steps ({r.spacing.value} spacing), guidance {r.guidance:g}{eta}, "
            f"x̂₀ extrapolation {r.extrapolation:g}, dynamic threshold {r.dynamic_threshold:g}, {r.precision.value}")


@dataclass(frozen=True)
class Handlers:
    """The demo's actions over one set of models."""

    models: Models
    store: OutputStore = field(default_factory=OutputStore)
    # s between streamed previews per model: both models stream at once, and every preview is a PNG that the
    # server encodes and the browser decodes on the CPU the models use
    min_preview_interval: float = 0.5
    sampling: SamplingSettings = field(default_factory=SamplingSettings)  # the server's (CLI); None = card default
    long_run_seconds: float = LONG_RUN_SECONDS  # ask before a generation expected to take longer
    # re-segmentation of the samples: a bench.segmenter.load_segmenter source, "none" (off), or AUTO (the bench's
    # segmenter for the checkpoint's dataset when it is on disk; `resegment.choose_segmenter`)
    segmenter: str | None = AUTO
    refine: RunPlan = RunPlan()  # how Refine and the edit tab share the CPU between the models (`python -m demo`)
    _asked: dict = field(default_factory=dict)  # long requests warned about -> when (a repeat within CONFIRM_SECONDS runs)

    @property
    def table(self) -> ClassTable:
        return self.models.table

    @functools.cached_property
    def resegmenter(self) -> Resegmenter:
        """The bench's segmenter for the models' label encoding (loaded on first use)."""
        pipe = self.models.primary
        return Resegmenter.for_model(pipe.card.dataset, self.table, self.segmenter, str(pipe.device))

    @property
    def controls(self) -> Controls:
        """What the sampling controls show for these models' cards."""
        return Controls.of({slot: p.card for slot, p in self.models.slots() if p is not None}, self.sampling)

    # --- labels ---------------------------------------------------------------------------------------------
    def decode_editor(self, value: dict[str, Any] | None) -> DecodedLabel:
        return decode_canvas(value, self.table, self.models.size)

    def upload(self, path: str | None) -> tuple[dict[str, Any], str]:
        """An uploaded file -> (canvas value showing the decoded label, report markdown)."""
        if not path:
            raise ValueError("no file received: choose a label map image")
        dec = decode_file(path, self.table, self.models.size)
        return canvas_value(dec.label, self.table, self.models.size), dec.report()

    def fill(self, choice: str) -> dict[str, Any]:
        """Canvas value filled with one class (the fill tool): "tree (5)", "tree" or a raw id."""
        rid = parse_class(self.table, choice)
        return canvas_value(np.full((self.models.size,) * 2, rid, np.int64), self.table, self.models.size)

    def brush(self, choice: str) -> Any:
        """Editor update whose brush paints the picked class ("tree (5)")."""
        return brush_update(self.table, self.models.size, parse_class(self.table, choice))

    @functools.cached_property
    def examples(self) -> Examples:
        """The Examples tab's label maps for the models' dataset (world scenes, faces, streets, or none)."""
        return examples_for(self.models.primary.card.dataset, self.table, self.models.size)

    def examples_available(self) -> bool:
        return bool(self.examples.labels)

    def edit_available(self) -> bool:
        """Edit mode repaints the embedded world's scenes, so it needs the world's examples."""
        return self.examples.world and examples_supported(self.table, self.models.size)

    def example_gallery(self) -> list[tuple[np.ndarray, str]]:
        """(label view, caption) per example."""
        return [(label_view(label, self.table), caption)
                for label, caption in zip(self.examples.labels, self.examples.captions)]

    def example(self, index: int) -> dict[str, Any]:
        """Canvas value of example `index`."""
        if not self.examples_available():
            raise ValueError(self.examples.title)
        if not 0 <= int(index) < len(self.examples.labels):
            raise ValueError(f"example index must be in 0..{len(self.examples.labels) - 1}, got {index}")
        return canvas_value(self.examples.labels[int(index)], self.table, self.models.size)

    def refresh(self, value: dict[str, Any] | None, corruption: str, severity: float, seed: Any,
                t: float) -> tuple[Any, str, Any, str, Any, str, pd.DataFrame]:
        """Canvas -> (clean label view, report, corrupted view, corruption note, y_t view, keep table, curves)."""
        blank = np.full((1, 1, 3), 255, np.uint8)
        empty_df = pd.DataFrame(columns=["t", "keep probability", "class"])
        try:
            dec = self.decode_editor(value)
        except ValueError as e:
            return blank, f"⚠️ {e}", blank, "", blank, "", empty_df
        try:
            request = Request.parse(corruption=corruption, severity=severity, seed=seed)
            noisy = apply_corruption(dec.label, request.corruption, request.severity, request.seed, self.table)
        except ValueError as e:
            return label_view(dec.label, self.table), dec.report(), blank, f"⚠️ {e}", blank, "", empty_df
        changed = float((noisy != dec.label).mean())
        note = describe(request.corruption)
        if request.corruption != NONE:
            note += f"\n\nchanged {100 * changed:.1f}% of the pixels (seed {request.seed})"
        pipe = self.models.primary
        t = int(np.clip(float(t or 0), 0, pipe.card.diffusion.num_timesteps))
        return (label_view(dec.label, self.table), dec.report(), label_view(noisy, self.table), note,
                explainer.diffused_label(pipe, noisy, t, self.table, request.seed),
                explainer.keep_table(pipe, noisy, t, self.table), explainer.gamma_curves(pipe, noisy, self.table))

    # --- generation -----------------------------------------------------------------------------------------
    def resolve(self, request: Request) -> dict[str, SamplingSettings]:
        """Slot -> the settings each loaded model will run (ValueError before any sampling if one cannot)."""
        return {slot: pipe.resolve(request.sampling) for slot, pipe in self.models.slots() if pipe is not None}

    def _write_downloads(self, results: dict[str, Result], resolved: dict[str, SamplingSettings], clean: np.ndarray,
                         noisy: np.ndarray, request: Request, resegmented: dict[str, Resegmented],
                         edit: tuple[EditBase, Inpaint] | None = None) -> list[str]:
        """Images, labels, the share picture and the settings.json that reproduces the images (`replay`)."""
        d = self.store.new_dir()
        files = []
        for slot, res in results.items():
            files += [_save_png(d / f"{slot.lower()}_{k}.png", img) for k, img in enumerate(res.images)]
        (d / "label.png").write_bytes(index_png(clean))
        files.append(str(d / "label.png"))
        files.append(_save_png(d / "label_color.png", self.table.colorize(clean)))
        if request.corruption != NONE:
            files.append(_save_png(d / "label_corrupted_color.png", self.table.colorize(noisy)))
        record = None
        if edit is not None:
            base, inpaint = edit
            files.append(_save_png(d / "edit_image.png", inpaint.image))
            files.append(_save_png(d / "edit_mask.png", (inpaint.mask > 0).astype(np.uint8) * 255))
            record = EditRecord(repainted_pixels=int(inpaint.mask.sum()), image_file="edit_image.png",
                                image_sha256=image_digest(inpaint.image), mask_file="edit_mask.png",
                                example=base.example, source=base.source)
        (d / "share.png").write_bytes(self._share(results, resolved, clean, noisy, request, resegmented, edit))
        files.append(str(d / "share.png"))
        models = {slot: SavedModel(pipe.card.name or "unnamed", pipe.digest, resolved[slot])
                  for slot, pipe in self.models.slots() if slot in results}
        text = settings_json(request, models=models, label=clean, label_file="label.png", edit=record)
        (d / "settings.json").write_text(text)
        files.append(str(d / "settings.json"))
        return files

    def _share(self, results: dict[str, Result], resolved: dict[str, SamplingSettings], clean: np.ndarray,
               noisy: np.ndarray, request: Request, resegmented: dict[str, Resegmented],
               edit: tuple[EditBase, Inpaint] | None) -> bytes:
        """share.png: the label, the corrupted label (or the edit), each model's samples and re-segmentation."""
        header = ["SCDM vs SDM: " + ", ".join(f"{k} {v}" for k, v in self.models.names().items())]
        if edit is not None:
            base, inpaint = edit
            header.append(f"edit of {base.source}: {int(inpaint.mask.sum())} pixels regenerated, the rest kept; "
                          f"seed {request.seed}")
            inputs = [(inpaint.image, "before"), (mask_view(inpaint.image, inpaint.mask, 1), "region regenerated"),
                      (self.table.colorize(clean), "edited label")]
        else:
            changed = 100 * float((noisy != clean).mean())
            header.append(f"corruption {request.corruption}" + (f" at severity {request.severity:g} ({changed:.1f}% "
                                                                f"of the pixels changed)" if request.corruption != NONE
                                                                else "") + f"; seed {request.seed}")
            inputs = [(self.table.colorize(clean), "your label")]
            if request.corruption != NONE:
                inputs.append((self.table.colorize(noisy), "corrupted label (what both models got)"))
        rows = []
        for slot, pipe in self.models.slots():
            if slot not in results:
                continue
            seg = resegmented.get(slot)
            scores = describe_scores(seg.scores).replace("**", "") if seg else self.resegmenter.note
            rows.append(ModelRow(f"{slot} ({pipe.card.name}): {describe_settings(resolved[slot])}", scores,
                                 results[slot].images, seg.views if seg else None))
        footer = []
        if resegmented:
            line = summary({slot: r.scores for slot, r in resegmented.items()})
            footer.append(f"{self.resegmenter.note}" + (f". {line}" if line else "") + ".")
            if any(r.overlays for r in resegmented.values()):
                footer.append("Second row of each model: magenta = painted as the corruption, green = painted as "
                              "intended, among the pixels the corruption changed to another class.")
        footer.append("settings.json beside this picture reproduces the samples: demo.replay.replay('settings.json', "
                      "scdm.load_pipeline(<model>)).")
        return share_png(header, inputs, rows, footer)

    def info(self, results: dict[str, Result], resolved: dict[str, SamplingSettings], request: Request,
             clean: np.ndarray, noisy: np.ndarray, extra: str = "",
             resegmented: dict[str, Resegmented] | None = None) -> str:
        """Markdown: latency and resolved settings per model, what the user set, the corruption, and (given
        `resegmented`) how far each model's images follow the corruption."""
        lines = []
        for slot, pipe in self.models.slots():
            if pipe is None:
                lines.append(f"- **{slot}**: no model loaded")
            elif slot in results:
                r, steps = results[slot], resolved[slot].steps
                lines.append(f"- **{slot}** (`{pipe.card.name}`): {len(r.images)} images in {r.seconds:.2f} s "
                             f"({steps / max(r.seconds, 1e-9):.1f} steps/s); {describe_settings(resolved[slot])}")
        s = request
        given = ", ".join(f"{k} {plain(v)}" for k, v in s.sampling.given().items())
        lines.append(f"- seed {s.seed}, {s.num_samples} samples per model; "
                     + (f"set: {given}, the rest from each model's card" if given else "all from each model's card"))
        if s.corruption != NONE:
            lines.append(f"- corruption `{s.corruption}` at severity {s.severity:g}: "
                         f"{100 * float((noisy != clean).mean()):.1f}% of the pixels changed")
        if extra:
            lines.append(f"- {extra}")
        if resegmented is not None:
            lines.append(self._resegment_summary(resegmented))
        return "\n".join(lines)

    def _resegment_summary(self, resegmented: dict[str, Resegmented]) -> str:
        """The info line: per model the share of corrupted pixels painted as the corruption, and the mIoUs."""
        if not resegmented:
            return f"- {self.resegmenter.note}"
        line = summary({slot: r.scores for slot, r in resegmented.items()})
        mious = "; ".join(f"{slot} mIoU {fmt_miou(r.scores.miou)} vs your label, {fmt_miou(r.scores.miou_noisy)} vs "
                          f"the corrupted one" for slot, r in resegmented.items())
        text = f"- {self.resegmenter.note}: "
        if line:
            text += (f"**{line}** (corrupted pixels: where the corrupted label differs from yours and is a real class; "
                     f"the share the segmenter assigns to the corrupted class); ")
        return text + mious

    def resegment(self, slot: str, images: np.ndarray, clean: np.ndarray,
                  noisy: np.ndarray) -> tuple[Resegmented | None, dict[str, Any]]:
        """(re-segmentation or None, the model column's update {"<slot> reseg": gallery, "<slot> scores": text})."""
        try:
            r = self.resegmenter(images, clean, noisy)
        except ValueError as e:
            return None, {f"{slot} reseg": [], f"{slot} scores": f"Re-segmentation unavailable: {e}"}
        what = "follows the corruption?" if r.overlays else "segmentation"
        gallery = [(upscale(v), f"{slot} #{k}: {what} (mIoU {fmt_miou(m)})")
                   for k, (v, m) in enumerate(zip(r.views, r.scores.image_miou))]
        return r, {f"{slot} reseg": gallery, f"{slot} scores": f"**{slot} re-segmented:** {describe_scores(r.scores)}"}

    def ui_request(self, corruption: Any, severity: Any, seed: Any, num_samples: Any, *sampling: Any) -> Request:
        """Control values -> Request; sampling values (in `settings.CONTROLS` order) the user left as the controls
        showed them stay None, so that each model runs its own card's default."""
        return Request.parse(corruption, severity, seed, num_samples,
                             self.controls.changes(parse_sampling(*sampling)))

    def generate_stream(self, value: dict[str, Any] | None, corruption: Any, severity: Any, sampler: Any,
                        steps: Any, guidance: Any, seed: Any, num_samples: Any, spacing: Any = None, eta: Any = None,
                        extrapolation: Any = None, dynamic_threshold: Any = None,
                        precision: Any = None) -> Iterator[dict[str, Any]]:
        """Yields partial updates {"SCDM preview", "SCDM gallery", "SDM ...", "info", "files"} while sampling."""
        request = self.ui_request(corruption, severity, seed, num_samples, sampler, steps, spacing, guidance, eta,
                                  extrapolation, dynamic_threshold, precision)
        clean = self.decode_editor(value).label
        noisy = apply_corruption(clean, request.corruption, request.severity, request.seed, self.table)
        yield from self._stream(noisy, request, clean, None)

    def edit_base(self, source: Any) -> EditBase:
        """What an edit starts from: `source` itself when it is the user's picture, else embedded-world example
        `source` (an index)."""
        if isinstance(source, EditBase):
            return source
        if not self.edit_available():
            raise ValueError("upload your picture and its label map (or pick an example label for it) first: this "
                             "model's examples are label maps without pictures")
        return example_base(int(source), self.models.size)

    def edit_source(self, picture: str | None, label_file: str | None,
                    index: Any) -> tuple[EditBase | None, np.ndarray | None, dict[str, Any] | None, str]:
        """The edit tab's inputs -> (the user's picture or None for the example, the image shown, the canvas value
        of the label to repaint, report markdown).

        Without a picture: example `index` (its image when the examples are embedded-world scenes). With one: its
        label is the uploaded label map, or example `index`'s label when none was uploaded.
        """
        size = self.models.size
        if not picture:
            waiting = "⚠️ a label map without its picture: upload the picture it belongs to as well. " if label_file \
                else ""
            if not self.examples_available():
                return None, None, None, waiting + "Upload your picture and its label map to edit them."
            if not self.edit_available():
                return (None, None, self.example(int(index)), waiting + f"Upload your picture to edit it with "
                        f"example {int(index)}'s label, or with its own label map.")
            base = example_base(int(index), size)
            return (None, upscale(base.image), canvas_value(base.label, self.table, size),
                    waiting + f"**Editing:** {base.source}")
        if label_file:
            dec = decode_file(label_file, self.table, size)
            with Image.open(label_file) as im:
                label_size = im.size
            label, label_source, notes = dec.label, f"your label map ({Path(label_file).name})", dec.notices
        elif self.examples_available():
            if not 0 <= int(index) < len(self.examples.labels):
                raise ValueError(f"example index must be in 0..{len(self.examples.labels) - 1}, got {index}")
            label, label_source, notes = self.examples.labels[int(index)], f"example {int(index)}'s label", ()
            label_size = (size, size)
        else:
            raise ValueError("upload the picture's label map too: this model has no example labels")
        base = picture_base(picture, size, label, label_size, label_source, notes)
        report = "\n".join([f"**Editing:** {base.source}"] + [f"- {n}" for n in base.notices])
        return base, upscale(base.image), canvas_value(base.label, self.table, size), report

    def edit_mask(self, source: Any, value: dict[str, Any] | None) -> np.ndarray | None:
        """The image with the repainted region tinted (None while nothing differs or there is no image)."""
        try:
            base = self.edit_base(source)
            edited = self.decode_editor(value).label
        except ValueError:
            return None
        mask = repaint_mask(base.label, edited)
        return mask_view(base.image, mask) if mask.any() else None

    def edit_stream(self, source: Any, value: dict[str, Any] | None, sampler: Any, steps: Any, guidance: Any,
                    seed: Any, num_samples: Any, spacing: Any = None, eta: Any = None, extrapolation: Any = None,
                    dynamic_threshold: Any = None, precision: Any = None) -> Iterator[dict[str, Any]]:
        """Regenerate only the repainted pixels (SDM Eq. 12 semantic editing) of `source`: an example index or the
        user's picture (`edit_source`)."""
        request = self.ui_request(NONE, 0.0, seed, num_samples, sampler, steps, spacing, guidance, eta,
                                  extrapolation, dynamic_threshold, precision)
        base = self.edit_base(source)
        edited = self.decode_editor(value).label
        mask = repaint_mask(base.label, edited)
        if not mask.any():
            raise ValueError("nothing was repainted: paint over part of the label, then regenerate")
        inpaint = Inpaint(base.image, mask)
        self.resolve(request)  # a setting a model cannot run fails before the mask is shown
        yield {"mask": mask_view(base.image, mask)}
        yield from self._stream(edited, request, edited, (base, inpaint))

    def estimate(self, request: Request, resolved: dict[str, SamplingSettings]) -> tuple[float, str]:
        """(seconds, text): the expected wall time of `request` on the loaded models, from one timed forward each
        (timed with this process's threads: side by side the slower model's time, one after the other the sum)."""
        each = [estimate_seconds(pipe, resolved[slot], request.num_samples)
                for slot, pipe in self.models.slots() if pipe is not None]
        seconds = max(each) if self.refine.side_by_side else sum(each)
        steps = "/".join(dict.fromkeys(str(r.steps) for r in resolved.values()))
        per = " per model" if len(resolved) > 1 else ""
        device = self.models.primary.device.type
        return seconds, (f"expected about {_duration(seconds)} for {request.num_samples} images x {steps} steps{per} "
                         f"on {device}")

    def _long_run(self, request: Request, resolved: dict[str, SamplingSettings], seconds: float,
                  note: str) -> str | None:
        """None when the run may start; else the message asking for a second click (fewer steps or samples)."""
        if seconds <= self.long_run_seconds:
            return None
        now = time.monotonic()
        key = (request.num_samples, tuple(sorted((slot, repr(r)) for slot, r in resolved.items())))
        for k in [k for k, t in self._asked.items() if now - t > CONFIRM_SECONDS]:
            del self._asked[k]
        if key in self._asked:  # the second click: run it
            del self._asked[key]
            return None
        self._asked[key] = now
        scale = self.long_run_seconds / seconds
        steps, n = max(r.steps for r in resolved.values()), request.num_samples
        fewer = [f"**Steps** to {math.floor(steps * scale)}"] if steps * scale >= 1 else []
        if n > 1 and n * scale >= 1:
            fewer.append(f"**Samples per model** to {math.floor(n * scale)}")
        lines = [f"⏳ Not started: {note}, longer than {_duration(self.long_run_seconds)}."]
        if fewer:
            lines.append(f"- Press **Generate** again (same settings) to run it anyway, or lower {' or '.join(fewer)} "
                         f"for about {_duration(self.long_run_seconds)} or less.")
        else:
            lines.append(f"- Press **Generate** again (same settings) to run it anyway, or lower **Steps** and "
                         f"**Samples per model**: each step of one image takes about {_duration(seconds / (steps * n))}.")
        if self.models.primary.device.type == "cpu" and torch.cuda.is_available():
            lines.append("- A GPU is available: restart the demo with `--device cuda`.")
        return "\n".join(lines)

    def _stream(self, label: np.ndarray, request: Request, clean: np.ndarray,
                edit: tuple[EditBase, Inpaint] | None) -> Iterator[dict[str, Any]]:
        resolved = self.resolve(request)
        seconds, note = self.estimate(request, resolved)
        ask = self._long_run(request, resolved, seconds, note)
        if ask is not None:
            yield {"info": ask}
            return
        base, inpaint = edit if edit is not None else (None, None)
        results: dict[str, Result] = {}
        resegmented: dict[str, Resegmented] = {}
        yield {"SCDM gallery": [], "SDM gallery": [], "SCDM reseg": [], "SDM reseg": [], "SCDM scores": "",
               "SDM scores": "", "compare": [], "files": None, "info": f"sampling ... ({note})"}
        pipes = {slot: pipe for slot, pipe in self.models.slots() if pipe is not None}
        # side by side (previews and results in any order) or one after the other (`self.refine`)
        for slot, ev in stream_models(pipes, label, request, self.table, inpaint=inpaint,
                                      min_interval=self.min_preview_interval, plan=self.refine):
            if isinstance(ev, Started):
                yield {f"{slot} scores": f"{slot}: sampling {request.num_samples} images ..."}
            elif isinstance(ev, Preview):
                yield {f"{slot} preview": preview_image(ev),
                       "info": f"sampling {slot}: step {ev.step + 1}/{ev.num_steps} (t = {ev.t}); {note}"}
            else:
                results[slot] = ev
                yield {f"{slot} gallery": [(upscale(im), f"{slot} #{k}") for k, im in enumerate(ev.images)],
                       f"{slot} scores": f"{slot}: done in {ev.seconds:.1f} s"}
        results = {slot: results[slot] for slot in pipes if slot in results}  # SCDM first in the info and files
        # re-segmented once every model is done: the segmenter does not take CPU from a model still sampling
        for slot, r in results.items():
            if self.resegmenter.available:
                yield {"info": f"re-segmenting the {slot} images ..."}
            seg, update = self.resegment(slot, r.images, clean, label)
            if seg is not None:
                resegmented[slot] = seg
            yield update
        resegmented = {slot: resegmented[slot] for slot in pipes if slot in resegmented}
        extra = f"{note} beforehand"
        if base is not None and inpaint is not None:
            extra += f"; edit of {base.source}: regenerated {int(inpaint.mask.sum())} repainted pixels"
            yield {"compare": [(upscale(inpaint.image), "before")]
                   + [(upscale(r.images[0]), f"{slot} after") for slot, r in results.items()]}
        yield {"info": self.info(results, resolved, request, clean, label, extra, resegmented),
               "files": self._write_downloads(results, resolved, clean, label, request, resegmented, edit)}

    def generate_api(self, path: str | None, corruption: Any, severity: Any, sampler: Any, steps: Any,
                     guidance: Any, seed: Any, num_samples: Any, spacing: Any = None, eta: Any = None,
                     extrapolation: Any = None, dynamic_threshold: Any = None,
                     precision: Any = None) -> tuple[list, list, str]:
        """The `/generate` endpoint: (SCDM images, SDM images, info) at the model resolution.

        Every sampling value passed is used for both models; None (or "") leaves it to each model's card.
        """
        if not path:
            raise ValueError("no label map file: pass handle_file('label.png') as the first input")
        sampling = parse_sampling(sampler, steps, spacing, guidance, eta, extrapolation, dynamic_threshold, precision)
        request = Request.parse(corruption, severity, seed, num_samples, self.controls.given(sampling))
        resolved = self.resolve(request)
        dec = decode_file(path, self.table, self.models.size)
        noisy = apply_corruption(dec.label, request.corruption, request.severity, request.seed, self.table)
        results = {slot: generate(pipe, noisy, request) for slot, pipe in self.models.slots() if pipe is not None}
        galleries = [[(im, f"{slot} #{k}") for k, im in enumerate(results[slot].images)] if slot in results else []
                     for slot, _ in self.models.slots()]
        notes = "; ".join(dec.notices)
        info = self.info(results, resolved, request, dec.label, noisy,
                         f"label: {dec.source}" + (f"; {notes}" if notes else ""))
        return galleries[0], galleries[1], info
