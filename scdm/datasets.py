"""The label encodings of the datasets the project knows: class names, standard palettes and `LabelSpec`s.

Each dataset is a table in raw-id order, one class a line: ``raw_id  r g b  name`` (Cityscapes puts its trainId
before the name). Raw ids are the values in the dataset's label PNGs; the `LabelSpec` factories at the end say
which channel each one feeds (docs/method.md §7). Sources of the names and colours:

- ADE20K SceneParsing: 150 classes, raw 1..150 (0 = unlabeled); names (short forms of objectInfo150's, e.g. "car"
  for "auto;automobile") and palette of mmsegmentation's ``ADE20KDataset``, the SceneParsing toolkit's colour map.
- CelebAMask-HQ: 19 parts, 0 = background; order of switchablenorms/CelebAMask-HQ
  ``face_parsing/Data_preprocessing/g_mask.py`` (its k-th part is written as k + 1), colours of its ``g_color.py``
  (``face_parsing/utils.py`` differs in r_brow only: (51, 255, 255)).
- COCO-Stuff: ids 0..181 of the stuffthingmaps PNGs (things 0..90, stuff 91..181; 255 = unlabeled), named as in
  nightrome/cocostuff ``labels.txt`` (whose ids are ours + 1). Colours: NVlabs/SPADE ``labelcolormap(182)``, the
  PASCAL VOC bit-interleaved map of id + 1 with GauGAN's colours for sea, sky-other, tree, clouds and grass.
  The 11 thing ids COCO never annotates are listed in `COCO_STUFF_UNUSED_IDS`.
- Cityscapes: gtFine labelIds 0..33 of mcordts/cityscapesScripts ``helpers/labels.py`` with colours and trainIds
  (255 = not evaluated), plus license plate (labelId -1 there, never in the PNGs) as id 34: the 35 classes of
  pix2pixHD, SPADE and SDM.

Standard palettes repeat colours (ADE20K road and skyscraper; Cityscapes' void classes, pole and polegroup, car and
license plate), a `LabelSpec` palette must not: colour-coded labels are decoded by colour. `distinct_colors` keeps
the first class of a colour and moves each later one up the blue channel to the next free value, so an image
colour-coded in the standard palette decodes to the first class.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .config import LabelSpec

Color = tuple[int, int, int]


@dataclass(frozen=True)
class DatasetClass:
    """One class of a dataset: its raw id in the label maps, its name and its standard colour."""

    id: int
    name: str
    color: Color


def _rows(table: str, numbers: int) -> list[tuple[list[int], str]]:
    """Lines of `numbers` integers then a name (which may hold spaces)."""
    rows = []
    for line in table.strip().splitlines():
        *values, name = line.split(maxsplit=numbers)
        rows.append(([int(v) for v in values], name))
    return rows


def _classes(table: str, numbers: int = 4) -> tuple[DatasetClass, ...]:
    """``raw_id r g b [...] name`` lines -> classes."""
    return tuple(DatasetClass(v[0], name, (v[1], v[2], v[3])) for v, name in _rows(table, numbers))


def distinct_colors(colors: Sequence[Color]) -> tuple[Color, ...]:
    """The palette with repeats made unique: the first class keeps a colour, later ones move up the blue channel."""
    taken = set(colors)
    used: set[Color] = set()
    out = []
    for color in colors:
        if color in used:
            r, g, b = color
            step = 1
            while (r, g, (b + step) % 256) in taken:
                step += 1
            color = (r, g, (b + step) % 256)
            taken.add(color)
        used.add(color)
        out.append(color)
    return tuple(out)


# ---------------------------------------------------------------------------------------------- ADE20K

# raw id (mmseg index = raw id - 1), colour, name
_ADE20K = """
  1 120 120 120  wall
  2 180 120 120  building
  3   6 230 230  sky
  4  80  50  50  floor
  5   4 200   3  tree
  6 120 120  80  ceiling
  7 140 140 140  road
  8 204   5 255  bed
  9 230 230 230  windowpane
 10   4 250   7  grass
 11 224   5 255  cabinet
 12 235 255   7  sidewalk
 13 150   5  61  person
 14 120 120  70  earth
 15   8 255  51  door
 16 255   6  82  table
 17 143 255 140  mountain
 18 204 255   4  plant
 19 255  51   7  curtain
 20 204  70   3  chair
 21   0 102 200  car
 22  61 230 250  water
 23 255   6  51  painting
 24  11 102 255  sofa
 25 255   7  71  shelf
 26 255   9 224  house
 27   9   7 230  sea
 28 220 220 220  mirror
 29 255   9  92  rug
 30 112   9 255  field
 31   8 255 214  armchair
 32   7 255 224  seat
 33 255 184   6  fence
 34  10 255  71  desk
 35 255  41  10  rock
 36   7 255 255  wardrobe
 37 224 255   8  lamp
 38 102   8 255  bathtub
 39 255  61   6  railing
 40 255 194   7  cushion
 41 255 122   8  base
 42   0 255  20  box
 43 255   8  41  column
 44 255   5 153  signboard
 45   6  51 255  chest of drawers
 46 235  12 255  counter
 47 160 150  20  sand
 48   0 163 255  sink
 49 140 140 140  skyscraper
 50 250  10  15  fireplace
 51  20 255   0  refrigerator
 52  31 255   0  grandstand
 53 255  31   0  path
 54 255 224   0  stairs
 55 153 255   0  runway
 56   0   0 255  case
 57 255  71   0  pool table
 58   0 235 255  pillow
 59   0 173 255  screen door
 60  31   0 255  stairway
 61  11 200 200  river
 62 255  82   0  bridge
 63   0 255 245  bookcase
 64   0  61 255  blind
 65   0 255 112  coffee table
 66   0 255 133  toilet
 67 255   0   0  flower
 68 255 163   0  book
 69 255 102   0  hill
 70 194 255   0  bench
 71   0 143 255  countertop
 72  51 255   0  stove
 73   0  82 255  palm
 74   0 255  41  kitchen island
 75   0 255 173  computer
 76  10   0 255  swivel chair
 77 173 255   0  boat
 78   0 255 153  bar
 79 255  92   0  arcade machine
 80 255   0 255  hovel
 81 255   0 245  bus
 82 255   0 102  towel
 83 255 173   0  light
 84 255   0  20  truck
 85 255 184 184  tower
 86   0  31 255  chandelier
 87   0 255  61  awning
 88   0  71 255  streetlight
 89 255   0 204  booth
 90   0 255 194  television receiver
 91   0 255  82  airplane
 92   0  10 255  dirt track
 93   0 112 255  apparel
 94  51   0 255  pole
 95   0 194 255  land
 96   0 122 255  bannister
 97   0 255 163  escalator
 98 255 153   0  ottoman
 99   0 255  10  bottle
100 255 112   0  buffet
101 143 255   0  poster
102  82   0 255  stage
103 163 255   0  van
104 255 235   0  ship
105   8 184 170  fountain
106 133   0 255  conveyer belt
107   0 255  92  canopy
108 184   0 255  washer
109 255   0  31  plaything
110   0 184 255  swimming pool
111   0 214 255  stool
112 255   0 112  barrel
113  92 255   0  basket
114   0 224 255  waterfall
115 112 224 255  tent
116  70 184 160  bag
117 163   0 255  minibike
118 153   0 255  cradle
119  71 255   0  oven
120 255   0 163  ball
121 255 204   0  food
122 255   0 143  step
123   0 255 235  tank
124 133 255   0  trade name
125 255   0 235  microwave
126 245   0 255  pot
127 255   0 122  animal
128 255 245   0  bicycle
129  10 190 212  lake
130 214 255   0  dishwasher
131   0 204 255  screen
132  20   0 255  blanket
133 255 255   0  sculpture
134   0 153 255  hood
135   0  41 255  sconce
136   0 255 204  vase
137  41   0 255  traffic light
138  41 255   0  tray
139 173   0 255  ashcan
140   0 245 255  fan
141  71   0 255  pier
142 122   0 255  crt screen
143   0 255 184  plate
144   0  92 255  monitor
145 184 255   0  bulletin board
146   0 133 255  shower
147 255 214   0  radiator
148  25 194 194  glass
149 102 255   0  clock
150  92   0 255  flag
"""
ADE20K_CLASSES: tuple[DatasetClass, ...] = _classes(_ADE20K)
ADE20K_UNLABELED = DatasetClass(0, "unlabeled", (0, 0, 0))  # pixels of no listed class; black is not in the palette


# ---------------------------------------------------------------------------------------------- CelebAMask-HQ

_CELEBAMASK_HQ = """
  0   0   0   0  background
  1 204   0   0  skin
  2  76 153   0  nose
  3 204 204   0  eye_g
  4  51  51 255  l_eye
  5 204   0 204  r_eye
  6   0 255 255  l_brow
  7 255 204 204  r_brow
  8 102  51   0  l_ear
  9 255   0   0  r_ear
 10 102 204   0  mouth
 11 255 255   0  u_lip
 12   0   0 153  l_lip
 13   0   0 204  hair
 14 255  51 153  hat
 15   0 204 204  ear_r
 16   0  51   0  neck_l
 17 255 153  51  neck
 18   0 204   0  cloth
"""
CELEBAMASK_HQ_CLASSES: tuple[DatasetClass, ...] = _classes(_CELEBAMASK_HQ)


# ---------------------------------------------------------------------------------------------- COCO-Stuff

# raw id (labels.txt id - 1), colour, name
_COCO_STUFF = """
  0 128   0   0  person
  1   0 128   0  bicycle
  2 128 128   0  car
  3   0   0 128  motorcycle
  4 128   0 128  airplane
  5   0 128 128  bus
  6 128 128 128  train
  7  64   0   0  truck
  8 192   0   0  boat
  9  64 128   0  traffic light
 10 192 128   0  fire hydrant
 11  64   0 128  street sign
 12 192   0 128  stop sign
 13  64 128 128  parking meter
 14 192 128 128  bench
 15   0  64   0  bird
 16 128  64   0  cat
 17   0 192   0  dog
 18 128 192   0  horse
 19   0  64 128  sheep
 20 128  64 128  cow
 21   0 192 128  elephant
 22 128 192 128  bear
 23  64  64   0  zebra
 24 192  64   0  giraffe
 25  64 192   0  hat
 26 192 192   0  backpack
 27  64  64 128  umbrella
 28 192  64 128  shoe
 29  64 192 128  eye glasses
 30 192 192 128  handbag
 31   0   0  64  tie
 32 128   0  64  suitcase
 33   0 128  64  frisbee
 34 128 128  64  skis
 35   0   0 192  snowboard
 36 128   0 192  sports ball
 37   0 128 192  kite
 38 128 128 192  baseball bat
 39  64   0  64  baseball glove
 40 192   0  64  skateboard
 41  64 128  64  surfboard
 42 192 128  64  tennis racket
 43  64   0 192  bottle
 44 192   0 192  plate
 45  64 128 192  wine glass
 46 192 128 192  cup
 47   0  64  64  fork
 48 128  64  64  knife
 49   0 192  64  spoon
 50 128 192  64  bowl
 51   0  64 192  banana
 52 128  64 192  apple
 53   0 192 192  sandwich
 54 128 192 192  orange
 55  64  64  64  broccoli
 56 192  64  64  carrot
 57  64 192  64  hot dog
 58 192 192  64  pizza
 59  64  64 192  donut
 60 192  64 192  cake
 61  64 192 192  chair
 62 192 192 192  couch
 63  32   0   0  potted plant
 64 160   0   0  bed
 65  32 128   0  mirror
 66 160 128   0  dining table
 67  32   0 128  window
 68 160   0 128  desk
 69  32 128 128  toilet
 70 160 128 128  door
 71  96   0   0  tv
 72 224   0   0  laptop
 73  96 128   0  mouse
 74 224 128   0  remote
 75  96   0 128  keyboard
 76 224   0 128  cell phone
 77  96 128 128  microwave
 78 224 128 128  oven
 79  32  64   0  toaster
 80 160  64   0  sink
 81  32 192   0  refrigerator
 82 160 192   0  blender
 83  32  64 128  book
 84 160  64 128  clock
 85  32 192 128  vase
 86 160 192 128  scissors
 87  96  64   0  teddy bear
 88 224  64   0  hair drier
 89  96 192   0  toothbrush
 90 224 192   0  hair brush
 91  96  64 128  banner
 92 224  64 128  blanket
 93  96 192 128  branch
 94 224 192 128  bridge
 95  32   0  64  building-other
 96 160   0  64  bush
 97  32 128  64  cabinet
 98 160 128  64  cage
 99  32   0 192  cardboard
100 160   0 192  carpet
101  32 128 192  ceiling-other
102 160 128 192  ceiling-tile
103  96   0  64  cloth
104 224   0  64  clothes
105 170 170 170  clouds
106 224 128  64  counter
107  96   0 192  cupboard
108 224   0 192  curtain
109  96 128 192  desk-stuff
110 224 128 192  dirt
111  32  64  64  door-stuff
112 160  64  64  fence
113  32 192  64  floor-marble
114 160 192  64  floor-other
115  32  64 192  floor-stone
116 160  64 192  floor-tile
117  32 192 192  floor-wood
118 160 192 192  flower
119  96  64  64  fog
120 224  64  64  food-other
121  96 192  64  fruit
122 224 192  64  furniture-other
123  29 195  49  grass
124 224  64 192  gravel
125  96 192 192  ground-other
126 224 192 192  hill
127   0  32   0  house
128 128  32   0  leaves
129   0 160   0  light
130 128 160   0  mat
131   0  32 128  metal
132 128  32 128  mirror-stuff
133   0 160 128  moss
134 128 160 128  mountain
135  64  32   0  mud
136 192  32   0  napkin
137  64 160   0  net
138 192 160   0  paper
139  64  32 128  pavement
140 192  32 128  pillow
141  64 160 128  plant-other
142 192 160 128  plastic
143   0  96   0  platform
144 128  96   0  playingfield
145   0 224   0  railing
146 128 224   0  railroad
147   0  96 128  river
148 128  96 128  road
149   0 224 128  rock
150 128 224 128  roof
151  64  96   0  rug
152 192  96   0  salad
153  64 224   0  sand
154  54  62 167  sea
155  64  96 128  shelf
156  95 219 255  sky-other
157  64 224 128  skyscraper
158 192 224 128  snow
159   0  32  64  solid-other
160 128  32  64  stairs
161   0 160  64  stone
162 128 160  64  straw
163   0  32 192  structural-other
164 128  32 192  table
165   0 160 192  tent
166 128 160 192  textile-other
167  64  32  64  towel
168 140 104  47  tree
169  64 160  64  vegetable
170 192 160  64  wall-brick
171  64  32 192  wall-concrete
172 192  32 192  wall-other
173  64 160 192  wall-panel
174 192 160 192  wall-stone
175   0  96  64  wall-tile
176 128  96  64  wall-wood
177   0 224  64  water-other
178 128 224  64  waterdrops
179   0  96 192  window-blind
180 128  96 192  window-other
181   0 224 192  wood
"""
COCO_STUFF_CLASSES: tuple[DatasetClass, ...] = _classes(_COCO_STUFF)
COCO_STUFF_UNLABELED = DatasetClass(255, "unlabeled", (0, 0, 0))
# Thing ids of the 182-id label set that COCO never annotates (street sign, hat, shoe, eye glasses, plate, mirror,
# window, desk, door, blender, hair brush): the 171 trained classes are the others.
COCO_STUFF_UNUSED_IDS: tuple[int, ...] = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)


# ---------------------------------------------------------------------------------------------- Cityscapes

# labelId, colour, trainId (255 = not evaluated), name
_CITYSCAPES = """
  0   0   0   0 255  unlabeled
  1   0   0   0 255  ego vehicle
  2   0   0   0 255  rectification border
  3   0   0   0 255  out of roi
  4   0   0   0 255  static
  5 111  74   0 255  dynamic
  6  81   0  81 255  ground
  7 128  64 128   0  road
  8 244  35 232   1  sidewalk
  9 250 170 160 255  parking
 10 230 150 140 255  rail track
 11  70  70  70   2  building
 12 102 102 156   3  wall
 13 190 153 153   4  fence
 14 180 165 180 255  guard rail
 15 150 100 100 255  bridge
 16 150 120  90 255  tunnel
 17 153 153 153   5  pole
 18 153 153 153 255  polegroup
 19 250 170  30   6  traffic light
 20 220 220   0   7  traffic sign
 21 107 142  35   8  vegetation
 22 152 251 152   9  terrain
 23  70 130 180  10  sky
 24 220  20  60  11  person
 25 255   0   0  12  rider
 26   0   0 142  13  car
 27   0   0  70  14  truck
 28   0  60 100  15  bus
 29   0   0  90 255  caravan
 30   0   0 110 255  trailer
 31   0  80 100  16  train
 32   0   0 230  17  motorcycle
 33 119  11  32  18  bicycle
 34   0   0 142 255  license plate
"""
CITYSCAPES_CLASSES: tuple[DatasetClass, ...] = _classes(_CITYSCAPES, numbers=5)
CITYSCAPES_TRAIN_IDS: tuple[int, ...] = tuple(v[4] for v, _ in _rows(_CITYSCAPES, 5))  # indexed by labelId
CITYSCAPES_IGNORE = 255  # trainId of the classes the benchmark does not score


def cityscapes_train_ids(label: np.ndarray) -> np.ndarray:
    """gtFine labelIds -> trainIds 0..18, 255 for the classes not evaluated and for ids outside 0..34."""
    label = np.asarray(label)
    if label.dtype.kind not in "iu":
        raise ValueError(f"label must hold integer labelIds, got dtype {label.dtype}")
    lut = np.asarray(CITYSCAPES_TRAIN_IDS, np.uint8)
    inside = (label >= 0) & (label < len(lut))
    return np.where(inside, lut[np.where(inside, label, 0)], CITYSCAPES_IGNORE).astype(np.uint8)


# ---------------------------------------------------------------------------------------------- LabelSpecs

def _spec(classes: Sequence[DatasetClass], identity: bool = False, **kwargs) -> LabelSpec:
    """One channel per class in table order; `identity` leaves raw_ids None (raw id k -> channel k)."""
    raw = tuple(c.id for c in classes)
    assert not identity or raw == tuple(range(len(raw)))
    return LabelSpec(num_classes=len(classes), raw_ids=None if identity else raw,
                     class_names=tuple(c.name for c in classes),
                     palette=distinct_colors([c.color for c in classes]), **kwargs)


def ade20k_labels() -> LabelSpec:
    """ADE20K: raw k -> channel k - 1, raw 0 (unlabeled) -> channel 150 (docs/method.md §7)."""
    return _spec(ADE20K_CLASSES + (ADE20K_UNLABELED,), unlabeled_id=0)


def coco_stuff_labels() -> LabelSpec:
    """COCO-Stuff: raw 0..181 -> themselves, raw 255 (unlabeled) -> 182; plus the instance-edge channel."""
    return _spec(COCO_STUFF_CLASSES + (COCO_STUFF_UNLABELED,), unlabeled_id=255, use_edges=True)


def celebamask_hq_labels() -> LabelSpec:
    """CelebAMask-HQ: 0 = background .. 18 = cloth; plus the edge channel."""
    return _spec(CELEBAMASK_HQ_CLASSES, identity=True, use_edges=True)


def cityscapes_labels() -> LabelSpec:
    """Cityscapes gtFine labelIds 0..34 as SDM uses them (0 = unlabeled), plus the instance-edge channel."""
    return _spec(CITYSCAPES_CLASSES, identity=True, unlabeled_id=0, use_edges=True)


# The embedded world's 12 classes in the bundled models' channel order: ADE20K raw ids (building, sky, tree, road,
# grass, sidewalk, mountain, water, field, rock, sand, flower) with ADE20K's names and colours.
EMBEDDED_IDS = (2, 3, 5, 7, 10, 12, 17, 22, 30, 35, 47, 67)


def embedded_labels() -> LabelSpec:
    """The embedded world's encoding: 12 ADE20K raw ids, unlabeled (raw 0) -> the all-zero vector."""
    classes = [ADE20K_CLASSES[i - 1] for i in EMBEDDED_IDS]
    return LabelSpec(num_classes=len(classes), raw_ids=EMBEDDED_IDS, unlabeled_id=0, unlabeled_to_null=True,
                     class_names=tuple(c.name for c in classes), palette=tuple(tuple(c.color) for c in classes))


DATASETS = ("ade20k", "celebamask_hq", "coco_stuff", "cityscapes", "embedded")  # names of `dataset_labels`


def dataset_labels(name: str) -> LabelSpec:
    """The `LabelSpec` of a dataset by name (bench's DatasetKind values; "embedded" is the procedural world)."""
    factories = {"embedded": embedded_labels, "ade20k": ade20k_labels, "celebamask_hq": celebamask_hq_labels, "coco_stuff": coco_stuff_labels,
                 "cityscapes": cityscapes_labels}
    if name not in factories:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return factories[name]()
