"""The share picture: one PNG with what the user saw, the label, the corrupted label and each model's samples with
their re-segmentation scores, text drawn with PIL. The `settings.json` beside it reproduces the samples."""
from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .views import upscale

CELL = 128  # px per image (64 px images at 2x, nearest)
PAD = 8  # px between images and around the picture
FONT_SIZE = 14
LINE = FONT_SIZE + 6  # px per text line
MIN_WIDTH = 640  # px, so that the text has room beside two small labels
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
MUTED = (90, 90, 90)


@dataclass(frozen=True)
class ModelRow:
    """One model's block: a title, a line of scores, its samples and (optionally) their re-segmentation views."""

    title: str
    scores: str
    samples: np.ndarray  # (N, H, W, 3) uint8
    views: np.ndarray | None = None  # (N, H, W, 3) uint8, shown under the samples


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def _plain(text: str) -> str:
    """Markdown and symbols the default font lacks -> plain text."""
    return text.replace("**", "").replace("`", "").replace("x̂₀", "x0").replace("x̂0", "x0")


def _wrap(text: str, width: int) -> list[str]:
    """Greedy word wrap to `width` px in the default font."""
    lines: list[str] = []
    for paragraph in _plain(text).split("\n"):
        line = ""
        for word in paragraph.split(" "):
            trial = f"{line} {word}" if line else word
            if line and _font().getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return lines


class _Page:
    """Lays blocks out top to bottom; without a canvas it only measures (the first pass sizes the canvas)."""

    def __init__(self, width: int, canvas: Image.Image | None = None) -> None:
        self.width, self.canvas, self.y = width, canvas, PAD
        self.draw = ImageDraw.Draw(canvas) if canvas is not None else None

    def text(self, text: str, color: tuple[int, int, int] = TEXT, x: int = PAD, width: int | None = None) -> int:
        """Wrapped lines at (x, y); returns their height. Only full-width text (no `width`) moves the cursor."""
        lines = _wrap(text, width or self.width - 2 * PAD)
        if self.draw is not None:
            for k, line in enumerate(lines):
                self.draw.text((x, self.y + k * LINE + 2), line, fill=color, font=_font())
        if width is None:
            self.y += LINE * len(lines)
        return LINE * len(lines)

    def images(self, images: Sequence[np.ndarray], captions: Sequence[str] = ()) -> None:
        """A row of images scaled to about CELL px, each caption wrapped under its image."""
        cells = [upscale(np.asarray(im), CELL)[..., :3] for im in images]
        top, x, caption_height = self.y, PAD, 0
        for k, cell in enumerate(cells):
            if self.canvas is not None:
                self.canvas.paste(Image.fromarray(np.ascontiguousarray(cell)), (x, top))
            if k < len(captions):
                self.y = top + cell.shape[0]
                caption_height = max(caption_height, self.text(captions[k], MUTED, x, cell.shape[1]))
            x += cell.shape[1] + PAD
        self.y = top + max(c.shape[0] for c in cells) + caption_height + PAD


def share_image(header: Sequence[str], inputs: Sequence[tuple[np.ndarray, str]], models: Sequence[ModelRow],
                footer: Sequence[str] = ()) -> Image.Image:
    """The picture, top to bottom: header lines, the captioned inputs, one block per model (title, scores, samples,
    re-segmentation views), footer lines."""
    widest = max([len(inputs)] + [len(m.samples) for m in models])
    width = max(MIN_WIDTH, widest * (CELL + PAD) + PAD)

    def lay_out(page: _Page) -> int:
        for line in header:
            page.text(line)
        if inputs:
            page.images([im for im, _ in inputs], [c for _, c in inputs])
        for m in models:
            page.text(m.title)
            page.text(m.scores, MUTED)
            page.images(list(m.samples))
            if m.views is not None:
                page.images(list(m.views))
        for line in footer:
            page.text(line, MUTED)
        return page.y + PAD

    canvas = Image.new("RGB", (width, lay_out(_Page(width))), BACKGROUND)
    lay_out(_Page(width, canvas))
    return canvas


def share_png(header: Sequence[str], inputs: Sequence[tuple[np.ndarray, str]], models: Sequence[ModelRow],
              footer: Sequence[str] = ()) -> bytes:
    """`share_image` as PNG bytes."""
    buf = io.BytesIO()
    share_image(header, inputs, models, footer).save(buf, format="PNG")
    return buf.getvalue()
