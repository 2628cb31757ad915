"""Seeded scenes, splits and their on-disk cache: the embedded default dataset."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .. import seeds
from ..files import atomic_write, cache_dir as cache_root
from .layout import make_layout
from .render import render

WORLD_VERSION = 1  # bump whenever layouts or rendering change, so stale caches are ignored

Split = Literal["train", "test"]
SPLITS = ("train", "test")  # separate seed streams ("world-train", "world-test"): the splits never share a scene
_LAYOUT, _APPEARANCE = 0, 1  # sub-streams: the label map does not depend on the renderer's draws


@dataclass(frozen=True)
class WorldConfig:
    """How scenes are generated."""

    size: int = 64  # image side in pixels (square); layouts scale with it, 32..256 supported
    seed: int = 0  # world seed; together with split and index it fixes every scene
    softness: float = 0.35  # blend towards a 3x3 blur on class boundaries (0 = hard edges)
    pixel_noise: float = 3.0  # max std of per-image sensor noise, in 0..255 units


@dataclass(frozen=True)
class Scene:
    """One scene: raw-id label map, instance ids and the rendered image."""

    label: np.ndarray  # (H, W) uint8 raw ADE20K ids
    instances: np.ndarray  # (H, W) int32, 0 = no instance, 1..N = trees, buildings, rocks
    image: np.ndarray  # (H, W, 3) uint8 RGB


def _check(split: str, config: WorldConfig) -> None:
    """Validate split and config."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    if not 16 <= config.size <= 1024:
        raise ValueError(f"WorldConfig.size must be in 16..1024 (tested 32..256), got {config.size}")
    if config.seed < 0:
        raise ValueError(f"WorldConfig.seed must be non-negative, got {config.seed}")


def scene_rng(
    index: int, split: Split = "train", config: WorldConfig = WorldConfig(), stream: int = _LAYOUT
) -> np.random.Generator:
    """The generator of one scene's layout (stream 0) or appearance (stream 1)."""
    if index < 0:
        raise ValueError(f"scene index must be non-negative, got {index}")
    _check(split, config)
    return seeds.rng(config.seed, f"world-{split}", index, stream)


def make_scene(index: int, split: Split = "train", config: WorldConfig = WorldConfig()) -> Scene:
    """Scene `index` of a split: deterministic in (config.seed, split, index, size)."""
    label, instances = make_layout(scene_rng(index, split, config, _LAYOUT), config.size)
    image = render(label, instances, scene_rng(index, split, config, _APPEARANCE),
                   softness=config.softness, pixel_noise=config.pixel_noise)
    return Scene(label, instances, image)


def make_split(split: Split, n: int, config: WorldConfig = WorldConfig(), *, start: int = 0) -> dict[str, np.ndarray]:
    """Scenes start..start+n-1 stacked as {"labels": (n,H,W) u8, "instances": (n,H,W) i32, "images": (n,H,W,3) u8}."""
    _check(split, config)
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be non-negative, got n={n}, start={start}")
    s = config.size
    out = {"labels": np.empty((n, s, s), np.uint8), "instances": np.empty((n, s, s), np.int32),
           "images": np.empty((n, s, s, 3), np.uint8)}
    for k in range(n):
        scene = make_scene(start + k, split, config)
        out["labels"][k], out["instances"][k], out["images"][k] = scene.label, scene.instances, scene.image
    return out


def cache_path(split: Split, n: int, config: WorldConfig = WorldConfig(), cache_dir: str | Path | None = None) -> Path:
    """Where load_or_make_split keeps a split (default `scdm.files.cache_dir("world")`): keyed by version, split, n,
    size, seed (+ a hash of other knobs)."""
    if cache_dir is None:
        cache_dir = cache_root("world")
    knobs = hashlib.sha1(repr(sorted(asdict(config).items())).encode()).hexdigest()[:8]
    return Path(cache_dir) / f"world_v{WORLD_VERSION}_{split}_n{n}_s{config.size}_seed{config.seed}_{knobs}.npz"


def load_or_make_split(
    split: Split, n: int, config: WorldConfig = WorldConfig(), cache_dir: str | Path | None = None
) -> dict[str, np.ndarray]:
    """make_split(split, n, config), cached as .npz (written atomically; unreadable files are regenerated)."""
    path = cache_path(split, n, config, cache_dir)
    s = config.size
    shapes = {"labels": (n, s, s), "instances": (n, s, s), "images": (n, s, s, 3)}
    if path.exists():
        try:
            with np.load(path) as f:
                data = {k: f[k] for k in shapes}
            if all(data[k].shape == shapes[k] for k in shapes):
                return data
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # corrupt or partial: regenerate below
    data = make_split(split, n, config)
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **data)

    atomic_write(path, write)
    return data
