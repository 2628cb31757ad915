"""scdm.seeds: the one seed rule returns exactly what each caller derived before it moved here (the bench tables in
README.md, the world's scenes and the bundled models' training follow from these numbers), and it is checked."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from scdm.seeds import image_seed, name_index, rng, seed_for, stream


def _first_word(*entropy: int) -> int:
    return int(np.random.SeedSequence(list(entropy)).generate_state(1)[0])


# (arguments, value) pinned from the code before the move: scdm.pipeline.image_seed, bench.sampling.corruption_seed
# and sample_seed, scdm sample's file seeds, scdm.world.scene_rng and scdm.train's per-step generator
PINNED = [
    (("image", 0, 0), 2968811710), (("image", 0, 5), 161328693), (("image", 2**31 - 1, 2**40), 1629766596),
    (("image", -1, 1), 989230592),  # negative seeds wrap modulo 2**32, as before
    (("corruption", 0, 0), 3964924996), (("corruption", 0, 49), 2266485568), (("corruption", 2**40, 1000), 3194141883),
    (("sample", 0, 0, 0), 3141116543), (("sample", 0, 0, 2), 349035980), (("sample", 2, 49, 1), 3331846661),
]


@pytest.mark.parametrize("args,value", PINNED)
def test_seeds_are_the_published_ones(args, value) -> None:
    purpose, seed, *rest = args
    assert seed_for(seed, purpose, *rest) == value
    if purpose == "image":
        assert image_seed(seed, rest[0]) == value


def test_coded_streams_are_seed_sequences_of_their_words() -> None:
    for s in (0, 1, 7, 123456789012):  # seeds of any size are taken whole
        for i in (0, 1, 49, 10_000):
            assert seed_for(s, "corruption", i) == _first_word(s, 1, i)
            assert seed_for(s, "sample", i, 3) == _first_word(s, 2, i, 3)
            assert image_seed(s, i) == _first_word(s, i)
    assert image_seed(-1, 5) == _first_word(2**32 - 1, 5)


def test_file_seeds_of_scdm_sample() -> None:
    """`python -m scdm sample`: sample j of label file STEM is image name_index(STEM) + j."""
    assert name_index("a") == int.from_bytes(hashlib.sha256(b"a").digest()[:8], "big")
    assert image_seed(0, name_index("a") + 1) == 2988056822
    assert image_seed(3, name_index("ADE_val_00000001")) == 1620625349


def test_world_and_training_generators() -> None:
    from scdm.world import WorldConfig, scene_rng

    assert int(scene_rng(0, "train", WorldConfig(seed=0), 1).integers(2**62)) == 1375516786890837922
    assert int(scene_rng(7, "test", WorldConfig(seed=3), 1).integers(2**62)) == 2188899696371219018
    assert int(rng(5, "step", 999).integers(2**62)) == 1423443105232915695
    a, b = rng(5, "step", 3).random(4), np.random.default_rng([5, 3]).random(4)  # scdm.train before the move
    np.testing.assert_array_equal(a, b)


def test_bad_purpose_or_index_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown seed purpose"):
        stream(0, "noise", 0)
    with pytest.raises(ValueError, match="non-negative"):
        seed_for(0, "sample", 1, -1)
