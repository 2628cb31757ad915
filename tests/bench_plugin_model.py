"""Plug-in models for the bench tests (the protocol of bench/plugin.py) and broken ones for its error messages.

`make` paints every class in its embedded-world colour plus seeded noise: a stand-in for any label-to-image model.
"""
from __future__ import annotations

import numpy as np

from scdm.datasets import embedded_labels
from scdm.labels import ClassTable


class Paint:
    """Each pixel its class's palette colour plus uniform noise drawn from the image's own seed."""

    encoding = "embedded"  # the raw ids it takes (a scdm.datasets name or a LabelSpec)

    def __init__(self, digest: str = "paint-v1", noise: int = 24, device: str = "cpu"):
        self.digest = digest
        self.noise = noise
        self.device = device
        self.table = ClassTable.from_spec(embedded_labels())
        self.calls: list[int] = []  # batch sizes seen

    def generate(self, labels: np.ndarray, *, seeds) -> np.ndarray:
        self.calls.append(len(labels))
        out = self.table.colorize(labels).astype(np.int64)  # (B, H, W, 3)
        for k, seed in enumerate(seeds):  # image k depends on labels[k] and seeds[k] only
            out[k] += np.random.default_rng(seed).integers(-self.noise, self.noise + 1, out[k].shape)
        return np.clip(out, 0, 255).astype(np.uint8)


def make(device: str = "cpu") -> Paint:
    return Paint(device=device)


def make_v2() -> Paint:
    return Paint(digest="paint-v2")


class Undeclared:
    """No `digest` (the bench hashes this file) and no `encoding`."""

    def generate(self, labels, *, seeds):
        return np.zeros((*labels.shape, 3), np.uint8)


def make_undeclared() -> Undeclared:
    return Undeclared()


class WrongShape(Undeclared):
    encoding = "embedded"

    def generate(self, labels, *, seeds):
        return np.zeros(labels.shape, np.uint8)  # (B, H, W): no colour axis


class WrongDtype(Undeclared):
    encoding = "embedded"

    def generate(self, labels, *, seeds):
        return np.zeros((*labels.shape, 3), np.float32)


def make_wrong_shape() -> WrongShape:
    return WrongShape()


def make_wrong_dtype() -> WrongDtype:
    return WrongDtype()


def make_raises():
    raise RuntimeError("no weights here")


def make_no_generate():
    return object()


def make_bad_digest() -> Undeclared:
    model = Undeclared()
    model.digest = 3  # type: ignore[attr-defined]
    return model


NOT_CALLABLE = 42
