"""Datasets as arrays: (image uint8, raw-id label, instances or None, name), validated before any long work.

Layouts: the embedded world, ADE20K (SPADE/SCDM), CelebAMask-HQ (SDM), COCO-Stuff (SPADE, instance maps),
Cityscapes (gtFine labelIds / instanceIds) and a plain folder. Resizing follows SDM's test-time protocol
(SPEC §7): labels and instances nearest, images bicubic; square datasets are resized to resolution x
resolution, Cityscapes keeps its aspect ratio with the short side at `resolution`. Label maps must be PNG.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from scdm.config import LabelSpec
from scdm.presets import ade20k_labels, celebamask_hq_labels, coco_stuff_labels, world_labels

from .config import DatasetKind, DatasetSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # inputs; samples are always written as PNG


@dataclass(frozen=True)
class Split:
    """One split resized to the bench resolution."""

    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N, H, W) int32 raw dataset ids
    instances: np.ndarray | None  # (N, H, W) int32 instance ids, or None when the dataset has none
    names: tuple[str, ...]  # file stems (or world scene names), for messages and grids

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass(frozen=True)
class Pair:
    """The files of one example."""

    name: str
    image: Path
    label: Path
    instances: Path | None


def cityscapes_labels() -> LabelSpec:
    """Cityscapes gtFine labelIds 0..34 as SDM uses them (0 = unlabeled), plus the instance-edge channel."""
    return LabelSpec(num_classes=35, unlabeled_id=0, use_edges=True)


def dataset_labels(kind: DatasetKind) -> LabelSpec | None:
    """The dataset's raw-id encoding (SPEC §7); None for folders (the models' cards decide)."""
    return {DatasetKind.EMBEDDED: world_labels, DatasetKind.ADE20K: ade20k_labels,
            DatasetKind.CELEBAMASK_HQ: celebamask_hq_labels, DatasetKind.COCO_STUFF: coco_stuff_labels,
            DatasetKind.CITYSCAPES: cityscapes_labels}.get(kind, lambda: None)()


def unlabeled_id(kind: DatasetKind) -> int:
    """The raw id corruptions write: ADE20K/world 0, COCO-Stuff 255, Cityscapes 0; CelebA has none (0 = background)."""
    spec = dataset_labels(kind)
    return 0 if spec is None or spec.unlabeled_id is None else spec.unlabeled_id


def valid_ids(spec: LabelSpec) -> set[int]:
    ids = set(spec.raw_ids if spec.raw_ids is not None else range(spec.num_classes))
    return ids | ({spec.unlabeled_id} if spec.unlabeled_id is not None else set())


# ---------------------------------------------------------------------------------------------- file layouts

def _default_split(kind: DatasetKind, train: bool) -> str:
    names = {DatasetKind.ADE20K: ("training", "validation"), DatasetKind.CELEBAMASK_HQ: ("train", "test"),
             DatasetKind.COCO_STUFF: ("train", "val"), DatasetKind.CITYSCAPES: ("train", "val"),
             DatasetKind.FOLDER: ("train", ""), DatasetKind.EMBEDDED: ("train", "test")}
    return names[kind][0 if train else 1]


def _dirs(kind: DatasetKind, root: Path, split: str) -> tuple[Path, Path, Path | None]:
    """(image dir, label dir, instance dir or None) of a layout."""
    if kind == DatasetKind.ADE20K:
        return root / "images" / split, root / "annotations" / split, None
    if kind == DatasetKind.CELEBAMASK_HQ:
        return root / split / "images", root / split / "labels", None
    if kind == DatasetKind.COCO_STUFF:
        return root / f"{split}_img", root / f"{split}_label", root / f"{split}_inst"
    if kind == DatasetKind.CITYSCAPES:
        return root / "leftImg8bit" / split, root / "gtFine" / split, root / "gtFine" / split
    base = root / split if split else root
    inst = base / "instances"
    return base / "images", base / "labels", inst if inst.is_dir() else None


def _files(folder: Path, suffixes: tuple[str, ...], recursive: bool = False) -> list[Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes)


def list_pairs(spec: DatasetSpec, train: bool = False) -> list[Pair]:
    """Match image, label and instance files by name; a ValueError names missing folders and unmatched files."""
    kind = spec.kind
    if kind == DatasetKind.EMBEDDED:
        raise ValueError("the embedded world has no files")
    root = Path(spec.root or "")
    if not root.is_dir():
        raise ValueError(f"dataset folder {root} does not exist (--root, dataset {kind.value!r})")
    split = _default_split(kind, True) if train else (spec.split if spec.split is not None else _default_split(kind, False))
    image_dir, label_dir, inst_dir = _dirs(kind, root, split)
    for what, folder in (("image", image_dir), ("label", label_dir)):
        if not folder.is_dir():
            raise ValueError(f"{kind.value} {'training' if train else 'evaluation'} {what} folder {folder} does not exist; "
                             f"expected the {kind.value} layout (see `python -m bench run --help`)")
    if kind == DatasetKind.CITYSCAPES:
        images = {p.name.removesuffix("_leftImg8bit.png"): p for p in _files(image_dir, (".png",), True)
                  if p.name.endswith("_leftImg8bit.png")}
        labels = {p.name.removesuffix("_gtFine_labelIds.png"): p for p in _files(label_dir, (".png",), True)
                  if p.name.endswith("_gtFine_labelIds.png")}
        insts = {p.name.removesuffix("_gtFine_instanceIds.png"): p for p in _files(label_dir, (".png",), True)
                 if p.name.endswith("_gtFine_instanceIds.png")}
    else:
        images = {p.stem: p for p in _files(image_dir, IMAGE_SUFFIXES)}
        not_png = [p for p in _files(label_dir, IMAGE_SUFFIXES) if p.suffix.lower() != ".png"]
        if not_png:
            raise ValueError(f"label maps must be PNG (lossless), found {not_png[0]}")
        labels = {p.stem: p for p in _files(label_dir, (".png",))}
        insts = {p.stem: p for p in _files(inst_dir, (".png",))} if inst_dir is not None and inst_dir.is_dir() else {}
    if not labels:
        raise ValueError(f"no label PNGs in {label_dir}")
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if no_label or no_image:
        parts = []
        if no_image:
            parts.append(f"{len(no_image)} label(s) without an image, e.g. {labels[no_image[0]]}")
        if no_label:
            parts.append(f"{len(no_label)} image(s) without a label, e.g. {images[no_label[0]]}")
        raise ValueError(f"{len(images)} images vs {len(labels)} labels in {root}: " + "; ".join(parts))
    if inst_dir is not None:  # COCO-Stuff and Cityscapes always; a folder when it has instances/
        missing = sorted(set(labels) - set(insts))
        if missing:
            raise ValueError(f"{len(missing)} label(s) without an instance map in {inst_dir}, e.g. {labels[missing[0]]}")
    return [Pair(k, images[k], labels[k], insts.get(k)) for k in sorted(labels)]


# ---------------------------------------------------------------------------------------------- reading

def _open(path: Path) -> Image.Image:
    try:
        im = Image.open(path)
        im.load()
        return im
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise ValueError(f"cannot read {path}: {e}") from None


def target_size(size: tuple[int, int], resolution: int, keep_aspect: bool) -> tuple[int, int]:
    """PIL (width, height) after resizing: square, or short side = resolution."""
    if not keep_aspect:
        return resolution, resolution
    scale = resolution / min(size)
    return round(size[0] * scale), round(size[1] * scale)


def read_pair(pair: Pair, resolution: int, keep_aspect: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(image (H, W, 3) uint8, label (H, W) int32, instances or None) resized with SDM's protocol."""
    image = _open(pair.image).convert("RGB")
    label = _open(pair.label)
    if label.mode not in ("L", "P", "I", "I;16", "I;16B", "1"):
        raise ValueError(f"label map {pair.label} has mode {label.mode}; expected a single-channel PNG of class ids")
    if label.size != image.size:
        raise ValueError(f"{pair.label} is {label.size[0]}x{label.size[1]} but its image {pair.image} is "
                         f"{image.size[0]}x{image.size[1]}")
    size = target_size(image.size, resolution, keep_aspect)
    img = np.asarray(image.resize(size, resample=Image.BICUBIC), np.uint8)
    lab = np.asarray(label.resize(size, resample=Image.NEAREST)).astype(np.int32)
    inst = None
    if pair.instances is not None:
        im = _open(pair.instances)
        if im.size != image.size:
            raise ValueError(f"instance map {pair.instances} size {im.size} differs from its image {image.size}")
        inst = np.asarray(im.resize(size, resample=Image.NEAREST)).astype(np.int32)
        if inst.ndim == 3:  # RGB-coded instance maps: one id per colour
            inst = (inst[..., 0] * 65536 + inst[..., 1] * 256 + inst[..., 2]).astype(np.int32)
    return img, lab, inst


def read_pairs(pairs: list[Pair], resolution: int, keep_aspect: bool, encoding: LabelSpec | None) -> Split:
    """Read and validate every pair; unknown class ids raise a ValueError naming the file."""
    known = valid_ids(encoding) if encoding is not None else None
    images, labels, insts = [], [], []
    for p in pairs:
        img, lab, inst = read_pair(p, resolution, keep_aspect)
        if known is not None:
            bad = sorted(set(np.unique(lab).tolist()) - known)
            if bad:
                raise ValueError(f"label map {p.label} has class ids {bad[:10]} that the dataset's encoding does not "
                                 f"have (valid: {sorted(known)[:12]}{' ...' if len(known) > 12 else ''})")
        if images and img.shape != images[0].shape:
            raise ValueError(f"{p.image} resizes to {img.shape[:2]} but {pairs[0].image} to {images[0].shape[:2]}; "
                             f"the bench needs one image size per run")
        images.append(img)
        labels.append(lab)
        insts.append(inst)
    has_inst = all(i is not None for i in insts) and bool(insts)
    return Split(np.stack(images), np.stack(labels), np.stack(insts) if has_inst else None, tuple(p.name for p in pairs))


# ---------------------------------------------------------------------------------------------- entry points

def _world(split: str, n: int, resolution: int) -> Split:
    from scdm.world import WorldConfig, load_or_make_split

    d = load_or_make_split(split, n, WorldConfig(size=resolution))  # type: ignore[arg-type]
    return Split(d["images"], d["labels"].astype(np.int32), d["instances"].astype(np.int32),
                 tuple(f"{split}_{i:05d}" for i in range(n)))


def load_eval(spec: DatasetSpec, limit: int | None = None) -> Split:
    """The evaluated split (first `limit` examples), fully read and validated."""
    if spec.kind == DatasetKind.EMBEDDED:
        n = spec.world_scenes if limit is None else min(limit, spec.world_scenes)
        return _world("test", n, spec.resolution)
    pairs = list_pairs(spec)[:limit]
    return read_pairs(pairs, spec.resolution, spec.kind == DatasetKind.CITYSCAPES, dataset_labels(spec.kind))


def load_train(spec: DatasetSpec, n: int) -> Split:
    """The first n training examples (flat-paint colours, the TRAIN reference)."""
    if spec.kind == DatasetKind.EMBEDDED:
        return _world("train", n, spec.resolution)
    try:
        pairs = list_pairs(spec, train=True)[:n]
    except ValueError as e:
        raise ValueError(f"{e}. A training split is needed by the flat-paint row and the 'train' reference; "
                         f"drop flat-paint and use --reference eval to run without one") from None
    return read_pairs(pairs, spec.resolution, spec.kind == DatasetKind.CITYSCAPES, dataset_labels(spec.kind))


def mean_colours(split: Split) -> np.ndarray:
    """(max_id + 1, 3) uint8: each class's mean training colour; ids never seen are black."""
    labels = split.labels.reshape(-1).astype(np.int64)
    size = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=size).astype(np.float64)
    sums = np.stack([np.bincount(labels, weights=split.images[..., c].reshape(-1).astype(np.float64), minlength=size)
                     for c in range(3)], axis=1)
    mean = sums / np.maximum(counts, 1)[:, None]
    return np.round(mean).astype(np.uint8)


def flat_paint(labels: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(N, H, W) raw ids -> (N, H, W, 3) uint8, every pixel its class's mean colour (unknown ids black)."""
    table = np.zeros((max(int(labels.max()) + 1, len(colours)), 3), np.uint8)
    table[: len(colours)] = colours
    return table[labels]
