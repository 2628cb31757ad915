"""Datasets as arrays: (image uint8, raw-id label, instances or None, name), validated before any long work.

Layouts: the embedded world, ADE20K (SPADE/SCDM), CelebAMask-HQ (SDM), COCO-Stuff (SPADE, instance maps),
Cityscapes (gtFine labelIds / instanceIds), a plain folder, and a folder of label maps alone (no photos: index PNGs
of raw ids, palette or colour-coded PNGs, read by `scdm.label_io` in one encoding, resized NEAREST). Files become arrays as the reference's evaluation
loader makes them (docs/method.md §7, `resize_arr`): the photo is halved with BOX while its short side is >= 2x the
target, then resized once with BICUBIC to resolution x resolution (squashed, not cropped; Cityscapes keeps its
aspect with the short side at `resolution`); label and instance maps are read as 8 bit, like its
`.convert("L")`, and resized NEAREST straight from their own size to the photo's final size. Label maps must be
PNG. tests/test_reference_preprocessing.py checks the outputs bit for bit against the official functions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from scdm.config import LabelSpec
from scdm.datasets import DATASETS
from scdm.datasets import dataset_labels as labels_of
from scdm.label_io import ID_MODES, decode_image, index_array
from scdm.labels import ClassTable, class_ids, fill_id, ids_error, invalid_ids, valid_ids

from .config import DatasetKind, DatasetSpec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")  # inputs; samples are always written as PNG


@dataclass(frozen=True)
class Split:
    """One split resized to the bench resolution."""

    images: np.ndarray | None  # (N, H, W, 3) uint8; None for a label-only folder
    labels: np.ndarray  # (N, H, W) int32 raw dataset ids
    instances: np.ndarray | None  # (N, H, W) int32 instance ids, or None when the dataset has none
    names: tuple[str, ...]  # file stems (or world scene names), for messages and grids
    originals: OriginalLabels | None = None  # the label files at their own size (DS starts there); None: made here
    notes: tuple[str, ...] = ()  # how the maps were read, for the report (label-only folders: colour decoding)

    def __len__(self) -> int:
        return self.labels.shape[0]


@dataclass(frozen=True)
class Pair:
    """The files of one example."""

    name: str
    image: Path
    label: Path
    instances: Path | None


@dataclass(frozen=True)
class Protocol:
    """How one layout's files are read: the reference evaluation loader's choices (docs/method.md §7)."""

    keep_aspect: bool = False  # short side = resolution (Cityscapes); else squashed to resolution x resolution
    eight_bit_labels: bool = True  # label maps read as 8 bit like `.convert("L")`; ids > 255 raise, never clip
    eight_bit_instances: bool = True  # instance maps `.convert("L")` exactly as the reference (RGB -> luma)


PROTOCOLS = {
    DatasetKind.ADE20K: Protocol(),
    DatasetKind.CELEBAMASK_HQ: Protocol(),
    DatasetKind.COCO_STUFF: Protocol(),
    # The reference reads Cityscapes' 16-bit instanceIds with `.convert("L")` too, which clips every thing
    # instance (ids 24000 and up) to 255 and erases the edges between them; Cityscapes is outside the SCDM
    # paper's tables, so the bench keeps the full ids there.
    DatasetKind.CITYSCAPES: Protocol(keep_aspect=True, eight_bit_instances=False),
    # No reference: 16-bit label ids and RGB-coded instance maps (one id per colour) are kept as they are.
    DatasetKind.FOLDER: Protocol(eight_bit_labels=False, eight_bit_instances=False),
}


def dataset_labels(kind: DatasetKind) -> LabelSpec | None:
    """The dataset's raw-id encoding (`scdm.datasets.dataset_labels`, docs/method.md §7); None for folders (the models'
    cards decide)."""
    return None if kind in (DatasetKind.FOLDER, DatasetKind.LABELS) else labels_of(kind.value)


def encoding_kind(spec: DatasetSpec) -> DatasetKind:
    """The kind whose encoding names a run's classes: a label-only folder's (resolved) `encoding`, else the layout."""
    return spec.encoding if spec.kind == DatasetKind.LABELS and spec.encoding is not None else spec.kind


def label_encoding(spec: DatasetSpec, declared: Sequence[tuple[str, LabelSpec]]) -> tuple[DatasetKind | None, LabelSpec]:
    """A label-only folder's encoding and the dataset it is (None: another one): `spec.encoding` when given, else the
    one every model declares (`declared`: (model name, card labels or a plug-in's `encoding`)), which must agree."""
    if spec.encoding is not None:
        return spec.encoding, labels_of(spec.encoding.value)
    if not declared:
        raise ValueError(f"the label maps in {spec.root} need an encoding and no model declares one: pass --encoding "
                         f"({', '.join(DATASETS)}) or `encoding` in the config's [dataset]")
    (first, labels), table = declared[0], ClassTable.from_spec(declared[0][1])
    for name, other in declared[1:]:
        if ClassTable.from_spec(other) != table:
            raise ValueError(f"models {first!r} and {name!r} read label ids differently (their cards' encodings "
                             f"differ), so one folder of label maps cannot serve both; pass --encoding NAME to read "
                             f"the maps in one of {', '.join(DATASETS)}, or benchmark them in separate runs")
    known = next((DatasetKind(n) for n in DATASETS if ClassTable.from_spec(labels_of(n)) == table), None)
    return known, labels


def naming_labels(kind: DatasetKind, cards: Sequence[LabelSpec] = ()) -> LabelSpec | None:
    """The encoding whose class names a report shows: the dataset's, else (folders) the first model card's that
    names its classes; None when none does."""
    specs = [dataset_labels(kind), *cards]
    return next((s for s in specs if s is not None and len(s.class_names) == len(class_ids(s))), None)


def class_names(kind: DatasetKind, cards: Sequence[LabelSpec] = (), fallback: Mapping[int, str] | None = None
                ) -> dict[int, str]:
    """raw id -> class name from `naming_labels`, completed by `fallback` (e.g. the segmenter's own names)."""
    spec = naming_labels(kind, cards)
    names = dict(zip(class_ids(spec), spec.class_names)) if spec is not None else {}
    return {**(fallback or {}), **names}


def class_label(raw_id: int, names: Mapping[int, str], *, with_id: bool = True) -> str:
    """'sky (3)' (or 'sky' without `with_id`) where `names` has id 3; 'id 3' where it does not."""
    name = names.get(int(raw_id))
    return f"id {raw_id}" if not name else f"{name} ({raw_id})" if with_id else name


def unlabeled_id(kind: DatasetKind) -> int:
    """The raw id corruptions write (`scdm.labels.fill_id`): ADE20K/world 0, COCO-Stuff 255, Cityscapes 0; CelebA
    has none (0 = background); folders 0."""
    spec = dataset_labels(kind)
    return 0 if spec is None else fill_id(spec)


# ---------------------------------------------------------------------------------------------- file layouts

def _default_split(kind: DatasetKind, train: bool) -> str:
    names = {DatasetKind.ADE20K: ("training", "validation"), DatasetKind.CELEBAMASK_HQ: ("train", "test"),
             DatasetKind.COCO_STUFF: ("train", "val"), DatasetKind.CITYSCAPES: ("train", "val"),
             DatasetKind.FOLDER: ("train", ""), DatasetKind.EMBEDDED: ("train", "test"), DatasetKind.LABELS: ("", "")}
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


def resize_photo(image: Image.Image, resolution: int, keep_aspect: bool) -> Image.Image:
    """The reference's test-time photo resize: BOX halvings while the short side >= 2 x resolution, one BICUBIC."""
    while min(image.size) >= 2 * resolution:
        image = image.resize((image.size[0] // 2, image.size[1] // 2), resample=Image.BOX)
    if not keep_aspect:
        return image.resize((resolution, resolution), resample=Image.BICUBIC)
    scale = resolution / min(image.size)  # of the halved photo, as the reference computes it
    return image.resize((round(image.size[0] * scale), round(image.size[1] * scale)), resample=Image.BICUBIC)


def read_map(path: Path, eight_bit: bool, label: bool) -> Image.Image:
    """A label (`label`) or instance map as an L (8-bit) or I (32-bit) image whose pixel values are the ids.

    8 bit is the reference's `.convert("L")`. Label maps are index maps read by `scdm.label_io.index_array`, which
    equals convert for the papers' datasets (all mode L) and differs where convert would go wrong: a palette map
    gives its indices (not its colours' luma), and 8-bit protocols raise a ValueError for ids above 255 (convert
    would clip them to 255). Instance maps are converted exactly as the reference does (RGB -> luma) or, wide, keep
    their ids (RGB instance maps: one id per colour, R * 65536 + G * 256 + B).
    """
    im = _open(path)
    if label:
        try:
            ids = index_array(im)
        except ValueError as e:
            raise ValueError(f"label map {path}: {e}") from None
        high = int(ids.max(initial=0))
        if eight_bit and high > 255:
            raise ValueError(f"label map {path} has id {high}; this dataset's maps are 8 bit (the reference reads them "
                             f"with .convert('L'), which would clip the id to 255); use the folder layout for wider ids")
        return Image.fromarray(ids.astype(np.uint8)) if eight_bit else Image.fromarray(ids.astype(np.int32))
    if eight_bit:
        return im.convert("L")
    arr = np.asarray(im)
    if arr.ndim == 3:  # RGB-coded instance maps
        arr = arr[..., 0].astype(np.int64) * 65536 + arr[..., 1].astype(np.int64) * 256 + arr[..., 2]
    return Image.fromarray(arr.astype(np.int32))  # mode I


def _check_proportional(what: str, path: Path, size: tuple[int, int], pair: Pair, image_size: tuple[int, int]) -> None:
    """A map may be smaller than its photo (CelebAMask-HQ: 512 vs 1024) but must have the same aspect ratio."""
    if size[0] * image_size[1] != size[1] * image_size[0]:
        raise ValueError(f"{what} {path} is {size[0]}x{size[1]} but its image {pair.image} is "
                         f"{image_size[0]}x{image_size[1]}: not the same aspect ratio — is it the right pair?")


def read_label(path: Path, protocol: Protocol) -> np.ndarray:
    """(H0, W0) int32 raw ids of a label file at its own size (the DS corruption starts here, docs/method.md §6)."""
    return np.asarray(read_map(path, protocol.eight_bit_labels, label=True)).astype(np.int32)


def read_pair(pair: Pair, resolution: int, protocol: Protocol,
              known: frozenset[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(image (H, W, 3) uint8, label (H, W) int32, instances or None), each as the reference's loader makes it.

    `known`: the dataset's raw ids; an id outside it, anywhere in the original map, raises a ValueError.
    """
    image = _open(pair.image).convert("RGB")
    photo = resize_photo(image, resolution, protocol.keep_aspect)
    label = read_map(pair.label, protocol.eight_bit_labels, label=True)
    _check_proportional("label map", pair.label, label.size, pair, image.size)
    if known is not None:
        bad = invalid_ids(np.asarray(label), known)
        if bad:
            valid = f"{sorted(known)[:12]}{' ...' if len(known) > 12 else ''}"
            raise ValueError(f"label map {pair.label}: {ids_error(bad, valid, of='the dataset encoding')}")
    lab = np.asarray(label.resize(photo.size, resample=Image.NEAREST)).astype(np.int32)
    inst = None
    if pair.instances is not None:
        im = read_map(pair.instances, protocol.eight_bit_instances, label=False)
        _check_proportional("instance map", pair.instances, im.size, pair, image.size)
        inst = np.asarray(im.resize(photo.size, resample=Image.NEAREST)).astype(np.int32)
    return np.asarray(photo, np.uint8), lab, inst


@dataclass(frozen=True)
class OriginalLabels:
    """The label files of a split at their own size, read on demand (kept out of memory: 2000 ADE20K maps)."""

    files: tuple[Path, ...]
    protocol: Protocol
    table: ClassTable | None = None  # label-only folders: maps of any kind, decoded for this encoding

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray:
        if self.table is not None:
            return read_label_map(self.files[index], self.table)[0]
        return read_label(self.files[index], self.protocol)


def read_pairs(pairs: list[Pair], resolution: int, protocol: Protocol, encoding: LabelSpec | None) -> Split:
    """Read and validate every pair; unknown class ids raise a ValueError naming the file."""
    known = valid_ids(encoding) if encoding is not None else None
    images, labels, insts = [], [], []
    for p in pairs:
        img, lab, inst = read_pair(p, resolution, protocol, known)
        if images and img.shape != images[0].shape:
            raise ValueError(f"{p.image} resizes to {img.shape[:2]} but {pairs[0].image} to {images[0].shape[:2]}; "
                             f"the bench needs one image size per run")
        images.append(img)
        labels.append(lab)
        insts.append(inst)
    has_inst = all(i is not None for i in insts) and bool(insts)
    return Split(np.stack(images), np.stack(labels), np.stack(insts) if has_inst else None, tuple(p.name for p in pairs),
                 OriginalLabels(tuple(p.label for p in pairs), protocol))


# ---------------------------------------------------------------------------------------------- label-only folders

def list_label_maps(spec: DatasetSpec) -> list[Path]:
    """The PNG label maps of a label-only folder (`root`, or `root/split`), by file name."""
    folder = Path(spec.root or "") / (spec.split or "")
    if not folder.is_dir():
        raise ValueError(f"label folder {folder} does not exist (--root, dataset 'labels')")
    not_png = [p for p in _files(folder, IMAGE_SUFFIXES) if p.suffix.lower() != ".png"]
    if not_png:
        raise ValueError(f"label maps must be PNG (lossless), found {not_png[0]}")
    files = _files(folder, (".png",))
    if not files:
        raise ValueError(f"no label PNGs in {folder}: a label-only folder holds index, palette or colour-coded PNGs")
    return files


def read_label_map(path: Path, table: ClassTable, of: str = "the run's encoding") -> tuple[np.ndarray, str]:
    """(H0, W0) int32 raw ids of a label map of any kind `scdm.label_io` reads, every pixel a class of `table`, and
    how it was read; ids or colours outside the encoding raise a ValueError naming the file."""
    im = _open(path)
    if im.mode in ID_MODES and im.mode != "P":  # pixel values are the ids
        try:
            ids = index_array(im)
        except ValueError as e:
            raise ValueError(f"label map {path}: {e}") from None
        bad = invalid_ids(ids, table.raw_ids)
        if bad:
            raise ValueError(f"label map {path}: {ids_error(bad, table.describe_ids(), of=of)}; pass --encoding "
                             f"for maps of another dataset") from None
        return ids.astype(np.int32), "index"
    try:
        decoded = decode_image(im, table)
    except ValueError as e:
        raise ValueError(f"label map {path}: {e}") from None
    rep = decoded.colors
    if rep is not None and rep.unknown:
        colours = ", ".join(f"{h} x{n}" for h, n in rep.top_unknown())
        raise ValueError(f"label map {path}: {rep.unknown} px of colours that are no class of {of} "
                         f"({colours}); paint it in the encoding's palette ({table.describe_ids()}) or save raw ids")
    how = "index" if rep is None else "colour" if not rep.snapped else "snapped"
    return decoded.ids.astype(np.int32), how


def read_label_maps(files: Sequence[Path], resolution: int, encoding: LabelSpec, of: str = "the run's encoding"
                    ) -> Split:
    """Every map decoded for `encoding` (named `of` in errors) and resized NEAREST to resolution x resolution."""
    table = ClassTable.from_spec(encoding)
    labels, how = [], []
    for path in files:
        ids, way = read_label_map(path, table, of)
        im = Image.fromarray(ids).resize((resolution, resolution), resample=Image.NEAREST)
        labels.append(np.asarray(im).astype(np.int32))
        how.append(way)
    coloured = how.count("colour") + how.count("snapped")
    notes = (f"label maps: {len(files) - coloured} index maps, {coloured} decoded by colour"
             + (f" ({how.count('snapped')} with off-palette pixels snapped to the nearest class colour)"
                if how.count("snapped") else ""),) if coloured else ()
    return Split(None, np.stack(labels), None, tuple(p.stem for p in files),
                 OriginalLabels(tuple(files), Protocol(eight_bit_labels=False), table), notes)


# ---------------------------------------------------------------------------------------------- entry points

def _world(split: str, n: int, resolution: int) -> Split:
    from scdm.world import WorldConfig, load_or_make_split

    d = load_or_make_split(split, n, WorldConfig(size=resolution))  # type: ignore[arg-type]
    return Split(d["images"], d["labels"].astype(np.int32), d["instances"].astype(np.int32),
                 tuple(f"{split}_{i:05d}" for i in range(n)))


def load_eval(spec: DatasetSpec, limit: int | None = None, encoding: LabelSpec | None = None) -> Split:
    """The evaluated split (first `limit` examples), fully read and validated; a label-only folder is read in
    `encoding` (`label_encoding`)."""
    if spec.kind == DatasetKind.EMBEDDED:
        n = spec.world_scenes if limit is None else min(limit, spec.world_scenes)
        return _world("test", n, spec.resolution)
    if spec.kind == DatasetKind.LABELS:
        if encoding is None:
            raise ValueError("a label-only folder is read in an encoding: see bench.datasets.label_encoding")
        of = f"the {spec.encoding.value} encoding" if spec.encoding is not None else "the models' encoding"
        return read_label_maps(list_label_maps(spec)[:limit], spec.resolution, encoding, of)
    pairs = list_pairs(spec)[:limit]
    return read_pairs(pairs, spec.resolution, PROTOCOLS[spec.kind], dataset_labels(spec.kind))


def load_train(spec: DatasetSpec, n: int) -> Split:
    """The first n training examples (flat-paint colours, the TRAIN reference)."""
    if spec.kind == DatasetKind.EMBEDDED:
        return _world("train", n, spec.resolution)
    if spec.kind == DatasetKind.LABELS:
        raise ValueError("a label-only folder has no training photos (flat-paint, --reference train)")
    try:
        pairs = list_pairs(spec, train=True)[:n]
    except ValueError as e:
        raise ValueError(f"{e}. A training split is needed by the flat-paint row and the 'train' reference; "
                         f"drop flat-paint and use --reference eval to run without one") from None
    return read_pairs(pairs, spec.resolution, PROTOCOLS[spec.kind], dataset_labels(spec.kind))


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
