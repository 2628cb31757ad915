"""Plug-in models: any label-to-image model benchmarked next to the bundled ones (`ModelKind.PLUGIN`).

A plug-in is an entry point, "package.module:factory" (importable) or "path/to/file.py:factory" (the file alone is
imported). The bench calls the factory once per process, with `device=` the run's device ("cpu", "cuda:0") when
it has a `device` parameter, and uses the object it returns through `LabelToImage`:

    generate(labels, *, seeds) -> images
        labels  (B, H, W) int64 raw ids of the run's label encoding at the bench resolution (the model's copy)
        seeds   B ints, one per map
        images  (B, H, W, 3) uint8 numpy array, image k of labels[k]
    Image k must depend only on labels[k] and seeds[k] (e.g. one torch.Generator per image): the bench batches
    images as it likes (--batch-size, torchrun shards) and seeds every image itself, like `Pipeline.generate`.

    digest    optional str, the model's version: change it whenever outputs may change (weights, code, settings).
              It is the `weights` column and goes into each cell.json, so a run folder never mixes two versions.
              Without one the bench hashes the entry point and the factory's source file.
    encoding  optional `LabelSpec` or a `scdm.datasets` name ("ade20k", "embedded", ...): the raw ids it takes.
              Maps with other ids are refused before sampling; a label-only folder may be read in it.

Before any sampling the bench imports the entry point, calls the factory and runs `generate` on one label map;
each failure is a ValueError naming the entry point.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from scdm.config import LabelSpec


class LabelToImage(Protocol):
    """What a plug-in factory returns (optional attributes: `digest: str`, `encoding: LabelSpec | str`)."""

    def generate(self, labels: np.ndarray, *, seeds: Sequence[int]) -> np.ndarray:
        """(B, H, W) int64 raw ids and one seed per map -> (B, H, W, 3) uint8; image k from labels[k], seeds[k]."""
        ...


@dataclass(frozen=True, eq=False)
class Plugin:
    """A loaded plug-in: the user's model and what the bench records about it."""

    entry: str  # the entry point, as given
    model: Any  # the factory's LabelToImage
    digest: str  # its `digest`, else a hash of the entry point and the factory's source file
    encoding: LabelSpec | None  # its `encoding`, if it declares one

    def generate(self, labels: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """Images (B, H, W, 3) uint8 for raw ids (B, H, W); a wrong output is a ValueError naming the entry point."""
        labels = np.array(labels, dtype=np.int64)  # a copy: the model may not change the bench's maps
        images = self.model.generate(labels, seeds=[int(s) for s in seeds])
        expected = (*labels.shape, 3)
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape != expected:
            got = f"{type(images).__name__} {getattr(images, 'dtype', '')} {tuple(getattr(images, 'shape', ()))}"
            raise ValueError(f"plug-in {self.entry!r}: generate(labels {labels.shape}, seeds) returned {got.strip()}; "
                             f"expected a numpy uint8 array of shape {expected} (B, H, W, 3)")
        return images


def _import(module: str, entry: str):
    """The module of an entry point: a dotted name, or a .py file imported under a name derived from its path."""
    try:
        if not module.endswith(".py"):
            return importlib.import_module(module)
        path = Path(module).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no file {path}")
        name = f"bench_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        if name not in sys.modules:
            spec = importlib.util.spec_from_file_location(name, path)
            assert spec is not None and spec.loader is not None
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[name]
                raise
        return sys.modules[name]
    except Exception as e:  # noqa: BLE001 - the user's code: any import failure is reported with the entry point
        raise ValueError(f"plug-in {entry!r}: cannot import {module}: {type(e).__name__}: {e}") from e


def _source_digest(entry: str, factory, module) -> str:
    """sha256 (16 hex digits) of the entry point and the factory's source file."""
    try:
        source = inspect.getsourcefile(factory)
    except TypeError:
        source = None
    source = source or getattr(module, "__file__", None)
    if source is None or not Path(source).is_file():
        raise ValueError(f"plug-in {entry!r}: no source file to tell its versions apart; give the object the factory "
                         f"returns a `digest` string")
    return hashlib.sha256(entry.encode() + b"\0" + Path(source).read_bytes()).hexdigest()[:16]


def _encoding(entry: str, value) -> LabelSpec | None:
    from scdm.datasets import DATASETS, dataset_labels

    if value is None or isinstance(value, LabelSpec):
        return value
    if isinstance(value, str) and value in DATASETS:
        return dataset_labels(value)
    raise ValueError(f"plug-in {entry!r}: `encoding` must be a scdm.config.LabelSpec or one of {', '.join(DATASETS)}, "
                     f"got {value!r}")


def load_plugin(entry: str, *, device: str = "cpu") -> Plugin:
    """Import an entry point, call its factory and check what it returns (not yet its images: `probe`)."""
    module_name, _, attr = entry.rpartition(":")
    if not module_name or not attr:
        raise ValueError(f"plug-in entry point {entry!r} must be 'package.module:factory' or 'path/to/file.py:factory'")
    module = _import(module_name, entry)
    factory = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise ValueError(f"plug-in {entry!r}: {module_name} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise ValueError(f"plug-in {entry!r}: {attr} ({type(factory).__name__}) is not a callable factory")
    try:
        params = inspect.signature(factory).parameters
        takes_device = "device" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
    except (TypeError, ValueError):
        takes_device = False
    try:
        model = factory(device=device) if takes_device else factory()
    except Exception as e:  # noqa: BLE001 - the user's code
        raise ValueError(f"plug-in {entry!r}: the factory raised {type(e).__name__}: {e}") from e
    if not callable(getattr(model, "generate", None)):
        raise ValueError(f"plug-in {entry!r}: the factory returned {type(model).__name__!r}, which has no generate "
                         f"method; see bench/plugin.py for the protocol")
    digest = getattr(model, "digest", None)
    if digest is not None and (not isinstance(digest, str) or not digest):
        raise ValueError(f"plug-in {entry!r}: `digest` must be a non-empty string, got {digest!r}")
    return Plugin(entry, model, digest or _source_digest(entry, factory, module),
                  _encoding(entry, getattr(model, "encoding", None)))


def probe(plugin: Plugin, label: np.ndarray, seed: int = 0) -> None:
    """Run `generate` on one (H, W) label map and check its output, before any sampling."""
    try:
        plugin.generate(label[None], [seed])
    except ValueError as e:
        if str(e).startswith(f"plug-in {plugin.entry!r}"):
            raise
        raise ValueError(f"plug-in {plugin.entry!r}: generate failed on a 1-label probe: {e}") from e
    except Exception as e:  # noqa: BLE001 - the user's code
        raise ValueError(f"plug-in {plugin.entry!r}: generate failed on a 1-label probe: {type(e).__name__}: {e}") from e
