"""bench.robustness: per-label confusions add up to the metric, drops, and the paired bootstrap's behaviour."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from bench.metrics import miou
from bench.report import frame
from bench.robustness import (BootstrapConfig, compare_pair, drop_markdown, drop_summary, drops, miou_batch,
                              pair_markdown, paired_bootstrap)
from bench.segmenter import confusion_matrix, ids_to_indices, miou_from_confusion

CLASSES = (2, 3, 5, 7)


def _labels(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice([0, *CLASSES], size=(n, 8, 8)).astype(np.int32)  # 0 = unlabeled, ignored


def image_confusions(pred: np.ndarray, target: np.ndarray, classes) -> np.ndarray:
    """Per-image (N, K, K) confusions of raw ids, as `run_confusions` builds them."""
    return confusion_matrix(ids_to_indices(pred, classes), ids_to_indices(target, classes), len(classes), per_image=True)


def test_image_confusions_sum_to_the_dataset_confusion() -> None:
    target = _labels(5, 0)
    pred = np.where(_labels(5, 1) == 0, 7, _labels(5, 1))  # a segmenter predicts its classes only
    per = image_confusions(pred, target, CLASSES)
    whole = confusion_matrix(ids_to_indices(pred, CLASSES), ids_to_indices(target, CLASSES), len(CLASSES), ignore_index=255)
    assert per.shape == (5, 4, 4)
    np.testing.assert_array_equal(per.sum(0), whole)
    assert per.sum() == (target != 0).sum()  # unlabeled target pixels are ignored
    assert miou_batch(per.sum(0)) == pytest.approx(miou(pred, target, CLASSES))
    with pytest.raises(ValueError, match="predictions must be in"):
        image_confusions(np.zeros_like(pred), target, CLASSES)  # 0 is not a segmenter class
    with pytest.raises(ValueError, match="same number of pixels"):
        confusion_matrix(np.zeros((2, 4)), np.zeros((4, 2)), 3, per_image=True)
    assert confusion_matrix(np.zeros((0, 4)), np.zeros((0, 4)), 3, per_image=True).shape == (0, 3, 3)


def test_miou_batch_matches_miou_from_confusion_including_absent_classes() -> None:
    cms = image_confusions(np.where(_labels(6, 2) == 0, 2, _labels(6, 2)), _labels(6, 3), CLASSES)
    cms[0, 3, :] = 0
    cms[0, :, 3] = 0  # class 3 absent from image 0: skipped, not counted as IoU 0
    got = miou_batch(cms)
    want = [miou_from_confusion(c)[0] for c in cms]
    np.testing.assert_allclose(got, want)
    assert np.isnan(miou_batch(np.zeros((4, 4))))


def _df(rows) -> pd.DataFrame:
    return frame([{"model": m, "dataset": "embedded", "sampler": "ancestral", "steps": 25, "guidance": 1.5,
                   "corruption": c, "severity": s, "seed": seed, "metric": "miou", "value": v, "n": 10}
                  for m, c, s, seed, v in rows])


def test_drops_average_seeds_and_the_table_blanks_partial_means() -> None:
    df = _df([("a", "clean", 0, 0, 0.8), ("a", "clean", 0, 1, 0.6), ("a", "ds", 0.4, 0, 0.5), ("a", "ds", 0.4, 1, 0.5),
              ("a", "edge", 0.3, 0, 0.4), ("b", "clean", 0, 0, 0.9), ("b", "ds", 0.4, 0, 0.3)])
    d = drops(df).set_index(["model", "corruption"])["drop"]
    assert d[("a", "ds")] == pytest.approx(0.2) and d[("a", "edge")] == pytest.approx(0.3)
    assert d[("b", "ds")] == pytest.approx(0.6)
    table = drop_markdown(df)
    assert "| a | 0.7000 | 0.2000 | 0.3000 | 0.2500 |" in table
    assert "| b | 0.9000 | 0.6000 |  |  |" in table  # b has no edge cell: no mean across different columns
    assert drop_markdown(df[df["corruption"] != "clean"]) == ""
    assert drop_summary(df).startswith(table) and "python -m bench robustness RUN" in drop_summary(df)
    assert drop_summary(df[df["corruption"] != "clean"]) == ""


def _confusions(n: int, seed: int, noise: float) -> np.ndarray:
    """Per-label confusions of a segmenter that is right except on a `noise` fraction of pixels."""
    g = np.random.default_rng(seed)
    target = g.choice(CLASSES, size=(n, 16, 16))
    pred = np.where(g.random(target.shape) < noise, g.choice(CLASSES, size=target.shape), target)
    return image_confusions(pred, target, CLASSES)


def test_paired_bootstrap_separates_a_robust_model_from_a_fragile_one() -> None:
    clean = _confusions(40, 0, 0.1)
    conf = {"robust": {"clean": clean, "ds 0.4": _confusions(40, 1, 0.15), "edge 0.3": _confusions(40, 2, 0.15)},
            "fragile": {"clean": clean, "ds 0.4": _confusions(40, 3, 0.5), "edge 0.3": _confusions(40, 4, 0.5)}}
    r = compare_pair("robust", "fragile", conf, BootstrapConfig(300), torch.Generator().manual_seed(0))
    assert r.conditions == ("ds 0.4", "edge 0.3") and r.labels == 40
    assert r.delta > 0.1 and 0 < r.low <= r.delta <= r.high and r.p_not_better == 0
    assert r.mean_drop_a == pytest.approx(np.mean(r.drop_a))
    again = compare_pair("robust", "fragile", conf, BootstrapConfig(300), torch.Generator().manual_seed(0))
    assert again == r  # the generator fixes the resamples
    assert "| mean |" in pair_markdown(r) and "robust loses less in 100.0% of resamples" in pair_markdown(r)


def test_paired_bootstrap_of_a_model_with_itself_is_exactly_zero() -> None:
    c = {"clean": _confusions(20, 0, 0.1), "random 0.2": _confusions(20, 1, 0.3)}
    da, db, delta = paired_bootstrap(c["clean"], [c["random 0.2"]], c["clean"], [c["random 0.2"]],
                                     BootstrapConfig(100), torch.Generator().manual_seed(1))
    assert np.all(delta == 0) and da.std() > 0  # pairing cancels the label sampling noise exactly


def test_bootstrap_rejects_mismatched_inputs() -> None:
    c = _confusions(10, 0, 0.1)
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="same 10 labels"):
        paired_bootstrap(c, [c[:5]], c, [c], BootstrapConfig(10), g)
    with pytest.raises(ValueError, match="non-zero number"):
        paired_bootstrap(c, [], c, [], BootstrapConfig(10), g)
    with pytest.raises(ValueError, match="no clean-label samples"):
        compare_pair("a", "b", {"a": {"ds 0.4": c}, "b": {"clean": c}}, BootstrapConfig(10), g)
