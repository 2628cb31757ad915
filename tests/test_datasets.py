"""The datasets' class tables (scdm.datasets): known entries, counts, palettes, and the LabelSpecs built on them."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from bench.config import DatasetKind
from bench.datasets import dataset_labels
from bench.segmenter import CITYSCAPES_IDS
from scdm.datasets import (ADE20K_CLASSES, ADE20K_UNLABELED, CELEBAMASK_HQ_CLASSES, CITYSCAPES_CLASSES,
                           CITYSCAPES_IGNORE, CITYSCAPES_TRAIN_IDS, COCO_STUFF_CLASSES, COCO_STUFF_UNLABELED,
                           COCO_STUFF_UNUSED_IDS, ade20k_labels, celebamask_hq_labels, cityscapes_labels,
                           cityscapes_train_ids, coco_stuff_labels, distinct_colors)
from scdm.presets import world_labels
from scdm.world import CLASSES as WORLD_CLASSES

SPECS = {"ade20k": ade20k_labels, "celebamask_hq": celebamask_hq_labels, "coco_stuff": coco_stuff_labels,
         "cityscapes": cityscapes_labels, "embedded": world_labels}


def by_id(table):
    return {c.id: c for c in table}


def near_duplicates(colors, levels: int) -> list[tuple[int, int, int]]:
    """(i, j, largest channel difference) of colour pairs at most `levels` apart on every channel."""
    out = []
    for (i, a), (j, b) in itertools.combinations(enumerate(colors), 2):
        d = max(abs(x - y) for x, y in zip(a, b))
        if d <= levels:
            out.append((i, j, d))
    return out


def voc_color(index: int) -> tuple[int, int, int]:
    r = g = b = 0
    for shift in range(7, 0, -1):
        r, g, b = r | (index & 1) << shift, g | (index >> 1 & 1) << shift, b | (index >> 2 & 1) << shift
        index >>= 3
    return r, g, b


def test_ade20k_known_entries_and_count() -> None:
    ade = by_id(ADE20K_CLASSES)
    assert [c.id for c in ADE20K_CLASSES] == list(range(1, 151))
    assert (ade[1].name, ade[1].color) == ("wall", (120, 120, 120))
    assert (ade[2].name, ade[2].color) == ("building", (180, 120, 120))
    assert (ade[3].name, ade[3].color) == ("sky", (6, 230, 230))
    assert (ade[5].name, ade[5].color) == ("tree", (4, 200, 3))
    assert ade[8].name == "bed" and ade[150].name == "flag" and ade[150].color == (92, 0, 255)
    assert ADE20K_UNLABELED.id == 0 and ADE20K_UNLABELED.color not in {c.color for c in ADE20K_CLASSES}


def test_ade20k_palette_repeats_and_near_duplicates() -> None:
    colors = [c.color for c in ADE20K_CLASSES]
    # The standard palette repeats one colour: road (7) and skyscraper (49) are both (140, 140, 140).
    assert [(i + 1, j + 1) for i, j, d in near_duplicates(colors, 0)] == [(7, 49)]
    # Otherwise its colours are at least 10 levels apart on some channel, except grass (4, 250, 7) and
    # bottle (0, 255, 10): 5 levels. Colour snapping must match exact colours before nearest ones.
    assert [(i + 1, j + 1, d) for i, j, d in near_duplicates(colors, 9)] == [(7, 49, 0), (10, 99, 5)]


def test_celebamask_hq_parts() -> None:
    names = [c.name for c in CELEBAMASK_HQ_CLASSES]
    assert names == ["background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
                     "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"]
    assert [c.id for c in CELEBAMASK_HQ_CLASSES] == list(range(19))
    celeba = by_id(CELEBAMASK_HQ_CLASSES)
    assert celeba[0].color == (0, 0, 0) and celeba[1].color == (204, 0, 0) and celeba[13].color == (0, 0, 204)
    assert len({c.color for c in CELEBAMASK_HQ_CLASSES}) == 19


def test_coco_stuff_ids_names_and_palette() -> None:
    coco = by_id(COCO_STUFF_CLASSES)
    assert [c.id for c in COCO_STUFF_CLASSES] == list(range(182))
    assert coco[0].name == "person" and coco[90].name == "hair brush"  # things 0..90
    assert coco[91].name == "banner" and coco[156].name == "sky-other" and coco[181].name == "wood"  # stuff 91..181
    assert [coco[i].name for i in COCO_STUFF_UNUSED_IDS] == [
        "street sign", "hat", "shoe", "eye glasses", "plate", "mirror", "window", "desk", "door", "blender",
        "hair brush"]
    assert 182 - len(COCO_STUFF_UNUSED_IDS) == 171  # the trained classes (mmseg COCOStuffDataset)
    # SPADE labelcolormap(182): VOC colour of id + 1, GauGAN's colours for five stuff classes.
    special = {"sea": (54, 62, 167), "sky-other": (95, 219, 255), "tree": (140, 104, 47), "clouds": (170, 170, 170),
               "grass": (29, 195, 49)}
    assert all(c.color == special.get(c.name, voc_color(c.id + 1)) for c in COCO_STUFF_CLASSES)
    assert coco[0].color == (128, 0, 0)
    colors = {c.color for c in COCO_STUFF_CLASSES}
    assert len(colors) == 182 and COCO_STUFF_UNLABELED.id == 255 and COCO_STUFF_UNLABELED.color not in colors


def test_cityscapes_labels_colours_and_train_ids() -> None:
    city = by_id(CITYSCAPES_CLASSES)
    assert [c.id for c in CITYSCAPES_CLASSES] == list(range(35)) and len(CITYSCAPES_TRAIN_IDS) == 35
    assert (city[7].name, city[7].color, CITYSCAPES_TRAIN_IDS[7]) == ("road", (128, 64, 128), 0)
    assert (city[26].name, city[26].color, CITYSCAPES_TRAIN_IDS[26]) == ("car", (0, 0, 142), 13)
    assert (city[33].name, CITYSCAPES_TRAIN_IDS[33]) == ("bicycle", 18)
    assert city[0].name == "unlabeled" and city[34].name == "license plate"
    # trainId k <-> labelId: the 19 evaluated classes, as the bench's Cityscapes segmenter numbers them
    assert tuple(CITYSCAPES_TRAIN_IDS.index(k) for k in range(19)) == CITYSCAPES_IDS
    assert sum(t == CITYSCAPES_IGNORE for t in CITYSCAPES_TRAIN_IDS) == 35 - 19


def test_cityscapes_train_id_map() -> None:
    label = np.array([[7, 26, 0], [33, 34, 200], [-1, 18, 8]])
    assert cityscapes_train_ids(label).tolist() == [[0, 13, 255], [18, 255, 255], [255, 255, 1]]
    with pytest.raises(ValueError, match="integer"):
        cityscapes_train_ids(np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_label_specs_are_consistent(name: str) -> None:
    spec = SPECS[name]()
    assert len(spec.class_names) == len(spec.palette) == spec.num_classes
    assert len(set(spec.palette)) == spec.num_classes, "a LabelSpec palette must decode colours unambiguously"
    assert len(set(spec.class_names)) == spec.num_classes
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in spec.palette)
    if spec.raw_ids is not None:
        assert len(spec.raw_ids) == spec.num_classes


def test_label_specs_keep_channel_order() -> None:
    ade, coco = ade20k_labels(), coco_stuff_labels()
    assert ade.raw_ids == tuple(range(1, 151)) + (0,) and ade.unlabeled_id == 0 and not ade.use_edges
    assert ade.class_names[0] == "wall" and ade.class_names[150] == "unlabeled" and ade.palette[150] == (0, 0, 0)
    assert coco.raw_ids == tuple(range(182)) + (255,) and coco.unlabeled_id == 255 and coco.use_edges
    assert coco.num_classes == 183 and coco.class_names[0] == "person" and coco.class_names[182] == "unlabeled"
    celeba, city = celebamask_hq_labels(), cityscapes_labels()
    assert celeba.raw_ids is None and celeba.num_classes == 19 and celeba.use_edges and celeba.class_names[13] == "hair"
    assert city.raw_ids is None and city.num_classes == 35 and city.unlabeled_id == 0 and city.use_edges
    assert dataset_labels(DatasetKind.CITYSCAPES) == city and dataset_labels(DatasetKind.ADE20K) == ade


def test_distinct_colors_keeps_first_and_nudges_repeats() -> None:
    assert distinct_colors([(1, 2, 3), (1, 2, 3), (1, 2, 4), (1, 2, 3)]) == ((1, 2, 3), (1, 2, 5), (1, 2, 4), (1, 2, 6))
    assert distinct_colors([(0, 0, 255), (0, 0, 255)]) == ((0, 0, 255), (0, 0, 0))
    # Where the standard palette repeats a colour, the LabelSpec moves only the later class, and by one level.
    ade = ade20k_labels()
    moved = [(i, c) for i, (c, d) in enumerate(zip(ade.palette, [c.color for c in ADE20K_CLASSES])) if c != d]
    assert moved == [(48, (140, 140, 141))]  # skyscraper; road keeps (140, 140, 140)
    city = cityscapes_labels()
    moved = {i: c for i, (c, d) in enumerate(zip(city.palette, [c.color for c in CITYSCAPES_CLASSES])) if c != d}
    assert moved == {1: (0, 0, 1), 2: (0, 0, 2), 3: (0, 0, 3), 4: (0, 0, 4), 18: (153, 153, 154), 34: (0, 0, 143)}
    assert celebamask_hq_labels().palette == tuple(c.color for c in CELEBAMASK_HQ_CLASSES)


def test_embedded_world_agrees_with_ade20k() -> None:
    ade = by_id(ADE20K_CLASSES)
    assert all((c.name, c.color) == (ade[c.id].name, ade[c.id].color) for c in WORLD_CLASSES)
    # Pinned: the bundled embedded models were trained with these ids, names and colours.
    assert {c.id: (c.name, c.color) for c in WORLD_CLASSES} == {
        2: ("building", (180, 120, 120)), 3: ("sky", (6, 230, 230)), 5: ("tree", (4, 200, 3)),
        7: ("road", (140, 140, 140)), 10: ("grass", (4, 250, 7)), 12: ("sidewalk", (235, 255, 7)),
        17: ("mountain", (143, 255, 140)), 22: ("water", (61, 230, 250)), 30: ("field", (112, 9, 255)),
        35: ("rock", (255, 41, 10)), 47: ("sand", (160, 150, 20)), 67: ("flower", (255, 0, 0))}


def test_demo_accepts_every_dataset_palette() -> None:
    from demo.classes import ClassTable

    for name, make in SPECS.items():
        table = ClassTable.from_spec(make())
        assert table.names[0] != "class 0" and table.names[0] != "class 1", name
