"""Replay a downloaded `settings.json`: the same pixels as the demo made (the file names label, weights, settings)."""
from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from scdm.pipeline import Pipeline

from .classes import ClassTable
from .editing import example_scene, repaint_mask
from .labelmap import decode_file
from .noise import apply_corruption
from .runner import Inpaint, generate
from .settings import EditRecord, image_digest, label_digest, read_settings


def replay(settings_file: str | Path, pipe: Pipeline, *, slot: str | None = None,
           allow_other_weights: bool = False) -> np.ndarray:
    """Re-run one model of a downloaded `settings.json` (its label PNG beside it): the same pixels as the demo.

    `slot` ("SCDM" or "SDM") defaults to the pipeline's kind. The file names the weights that made each result
    (`Pipeline.digest`); other weights are refused unless `allow_other_weights` (then a warning). Version-1 files
    (older demos) record neither the weights nor the full settings: they replay with the card's current defaults
    for the rest, with a warning.
    """
    path = Path(settings_file)
    saved = read_settings(path.read_text())
    slot = slot or ("SCDM" if pipe.is_scdm else "SDM")
    if slot not in saved.models:
        raise ValueError(f"{path} has no {slot} result (it has {sorted(saved.models)}); pass slot=")
    entry = saved.models[slot]
    name = pipe.card.name or "unnamed"
    if entry.digest is None:
        warnings.warn(f"{path} is a version-{saved.version} settings file without the weights digest, spacing, eta, "
                      f"x̂0 extrapolation and dynamic thresholding: replaying {slot} with `{name}` and its card's "
                      f"current defaults for those (the same images only if that card and weights made it)",
                      stacklevel=2)
    elif entry.digest != pipe.digest:
        msg = (f"{slot}: {path.name} was made by `{entry.name}` with weights digest {entry.digest}, the loaded "
               f"`{name}` has {pipe.digest}")
        if not allow_other_weights:
            raise ValueError(f"{msg}; pass allow_other_weights=True to replay anyway (the images will differ)")
        warnings.warn(f"{msg}; replaying anyway (allow_other_weights), the images will differ", stacklevel=2)
    table, size = ClassTable.from_spec(pipe.card.labels), pipe.card.unet.image_size
    label = decode_file(path.parent / Path(saved.label_file).name, table, size).label
    if saved.label_sha256 is not None and label_digest(label) != saved.label_sha256:
        raise ValueError(f"{saved.label_file} beside {path} is not the label this result was made from "
                         f"(its sha256 differs from label_sha256)")
    r = saved.request
    noisy = apply_corruption(label, r.corruption, r.severity, r.seed, table)
    inpaint = None if saved.edit is None else _saved_inpaint(path, saved.edit, label, size)
    return generate(pipe, noisy, replace(r, sampling=entry.settings), inpaint).images


def _saved_inpaint(path: Path, edit: EditRecord, label: np.ndarray, size: int) -> Inpaint:
    """An edit's known image and region: the PNGs beside `path` (version 3), or the example scene (version 2)."""
    if edit.image_file is None:
        if edit.example is None:
            raise ValueError(f"{path}: the edit names neither an image file nor an example scene")
        scene = example_scene(edit.example, size)
        return Inpaint(scene.image, repaint_mask(scene.label.astype(np.int64), label))
    if edit.mask_file is None:
        raise ValueError(f"{path}: the edit names an image file but no mask_file")
    with Image.open(path.parent / Path(edit.image_file).name) as im:
        image = np.array(im.convert("RGB"))  # writable: torch.as_tensor warns on read-only arrays
    if edit.image_sha256 is not None and image_digest(image) != edit.image_sha256:
        raise ValueError(f"{edit.image_file} beside {path} is not the image this edit was made from (its sha256 "
                         f"differs from image_sha256)")
    with Image.open(path.parent / Path(edit.mask_file).name) as im:
        mask = (np.asarray(im.convert("L")) > 127).astype(np.uint8)
    if image.shape[:2] != (size, size) or mask.shape != (size, size):
        raise ValueError(f"{path}: the edit's image and mask must be {size}x{size} px, the model's size")
    return Inpaint(image, mask)
