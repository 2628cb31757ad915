"""Procedural outdoor scenes (label map, instances, image): the embedded default dataset."""

from .classes import CLASS_IDS, CLASS_NAMES, CLASSES, PALETTE, THING_IDS, UNLABELED, WorldClass, label_to_color
from .dataset import WORLD_VERSION, Scene, WorldConfig, cache_path, load_or_make_split, make_scene, make_split, scene_rng
from .layout import make_layout
from .render import render

__all__ = [
    "CLASSES", "CLASS_IDS", "CLASS_NAMES", "PALETTE", "THING_IDS", "UNLABELED", "WORLD_VERSION", "Scene",
    "WorldClass", "WorldConfig", "cache_path", "label_to_color", "load_or_make_split", "make_layout",
    "make_scene", "make_split", "render", "scene_rng",
]
