"""Seeds: every random stream of the project follows from a user's seed by one rule, kept here.

    stream(seed, purpose, index, *more) = numpy SeedSequence([seed, *CODES[purpose], index, *more])

`seed_for` takes the stream's first 32-bit word (for `torch.Generator().manual_seed`), `rng` makes a numpy
Generator of the whole stream. `index` is the item's index in its set (a label of a dataset, a world scene, an
optimiser step) or, for a file, `name_index(name)`, a stable hash of its name: an item's randomness then depends on
neither the batch size, the shard or process count, nor which other items are in the set.

    purpose       entropy words          used for
    image         seed, k                image k of `Pipeline.generate(seed=int)`; `python -m scdm sample`:
                                         sample j of label file F is image name_index(F.stem) + j
    step          seed, s                every draw of optimiser step s (`scdm.train`, `bench.train_segmenter`)
    corruption    seed, 1, i             the noise_sim corruption of label i: the bench, the demo (i = 0),
                                         `python -m noise_sim` (i = name_index(relative path))
    sample        seed, 2, i, j          sample j of label i: the bench, the demo (i = 0)
    world-train   seed, 0, i, stream     scene i of a world split: layout (stream 0), appearance (stream 1)
    world-test    seed, 1, i, stream

The table is frozen: the bench tables in README.md, the world's scenes and the bundled models follow from it.
A seed is a non-negative integer of any size; a negative one wraps modulo 2**32 (-1 -> 2**32 - 1).
SeedSequence pads its entropy with zeros, so word lists that differ only by trailing zeros are one stream:
`image` k and `step` k, `image` c and item 0 of the purpose with code c (`image` 1 = `corruption` 0), and
`world-test` scene i's layout and `corruption` i (code 1 for both). Each pair feeds different generators for
different things (a torch seed vs a PCG64 state, a label vs an image), so nothing is correlated in use; a new
purpose takes the next unused code word (3, ...).
"""
from __future__ import annotations

import hashlib

import numpy as np

CODES: dict[str, tuple[int, ...]] = {  # purpose -> the code words between the seed and the index
    "image": (),
    "step": (),
    "corruption": (1,),
    "sample": (2,),
    "world-train": (0,),
    "world-test": (1,),
}


def _word(seed: int) -> int:
    """A seed as SeedSequence entropy: non-negative as is, negative modulo 2**32."""
    seed = int(seed)
    return seed if seed >= 0 else seed & 0xFFFFFFFF


def stream(seed: int, purpose: str, index: int, *more: int) -> np.random.SeedSequence:
    """The SeedSequence of item `index` (and sub-item `more`) of `purpose` under `seed`."""
    if purpose not in CODES:
        raise ValueError(f"unknown seed purpose {purpose!r}; known: {sorted(CODES)}")
    words = [int(index), *(int(m) for m in more)]
    if any(w < 0 for w in words):
        raise ValueError(f"seed indices must be non-negative, got {words}")
    return np.random.SeedSequence([_word(seed), *CODES[purpose], *words])


def seed_for(seed: int, purpose: str, index: int, *more: int) -> int:
    """The 32-bit seed of item `index` of `purpose` under `seed` (for `torch.Generator().manual_seed`)."""
    return int(stream(seed, purpose, index, *more).generate_state(1)[0])


def rng(seed: int, purpose: str, index: int, *more: int) -> np.random.Generator:
    """A numpy Generator (PCG64) over the whole stream of item `index` of `purpose` under `seed`."""
    return np.random.Generator(np.random.PCG64(stream(seed, purpose, index, *more)))


def image_seed(seed: int, index: int) -> int:
    """Seed of image `index` of a call with `seed`: independent streams, independent of batching."""
    return seed_for(seed, "image", index)


def name_index(name: str) -> int:
    """A stable index for an item known by name (a file): the first 8 bytes of sha256(name), big-endian."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
