"""bench metrics: differential tests against direct formulas (scipy sqrtm FID, hand-made confusion matrices)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from bench import metrics as M
from bench.config import BenchConfig, Metric
from bench.scoring import plan_metrics


def _fid_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook FID with scipy's matrix square root."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d", [(200, 16), (64, 32)])
def test_frechet_distance_matches_scipy_sqrtm(n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.5 + 0.3
    got = M.frechet_distance(M.statistics(a), M.statistics(b))
    assert got == pytest.approx(_fid_scipy(a, b), rel=1e-6)
    assert M.frechet_distance(M.statistics(a), M.statistics(a)) == pytest.approx(0.0, abs=1e-6)


def test_frechet_needs_two_vectors() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        M.statistics(np.zeros((1, 4)))


def test_kernel_distance_small_for_same_distribution() -> None:
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(80, 8)), rng.normal(size=(80, 8)), rng.normal(size=(80, 8)) + 1.0
    same, other = M.kernel_distance(a, b, subsets=20), M.kernel_distance(a, c, subsets=20)
    assert abs(same) < 0.05 < other
    assert M.kernel_distance(a, c, subsets=20, seed=3) == M.kernel_distance(a, c, subsets=20, seed=3)


def test_miou_against_hand_computed_confusion() -> None:
    classes = (2, 3, 5)  # raw ids; 0 (unlabeled) and 9 (not a segmenter class) are ignored in the target
    target = np.array([[2, 2, 3, 3], [5, 5, 0, 9]])
    pred = np.array([[2, 3, 3, 3], [5, 2, 3, 5]])
    # scored pixels: (2,2) (2,3) (3,3) (3,3) (5,5) (5,2)  -> rows target, cols pred
    cm = np.array([[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    tp = np.diag(cm)
    iou = tp / (cm.sum(0) + cm.sum(1) - tp)
    assert M.miou(pred, target, classes) == pytest.approx(iou.mean())
    assert iou.mean() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_miou_skips_absent_classes() -> None:
    target = np.array([[2, 2], [3, 3]])
    assert M.miou(target, target, (2, 3, 5)) == 1.0  # class 5 absent everywhere: not counted


def test_lpips_diversity_with_a_local_backbone(tmp_path) -> None:
    """The `lpips` package with AlexNet weights from a file (random here; the loading path is what is tested)."""
    import lpips

    torch.manual_seed(0)
    trunk = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False).net  # random AlexNet features in slices
    state = {f"features.{name}.{p}": v for k in range(1, 6) for name, m in getattr(trunk, f"slice{k}").named_children()
             for p, v in m.state_dict().items()}
    path = tmp_path / M.ALEXNET_FILE
    torch.save(state, path)
    model = M.load_lpips(path)
    rng = np.random.default_rng(0)
    same = np.repeat(rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8), 3, axis=0)
    varied = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    assert M.lpips_diversity(model, [same]) == pytest.approx(0.0, abs=1e-6)
    assert M.lpips_diversity(model, [varied, same]) > 0
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not torchvision AlexNet"):
        M.load_lpips(tmp_path / "bad.pth")


def test_inception_features_from_a_local_file(tmp_path, monkeypatch) -> None:
    """fid/kid use torch-fidelity's Inception with weights from disk only (random weights stand in here)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    monkeypatch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
    torch.save({}, tmp_path / "empty.pth")
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(tmp_path / "empty.pth"))
    monkeypatch.undo()
    path = tmp_path / M.INCEPTION_FILE
    torch.save(net.state_dict(), path)
    space = M.inception_space(path)
    ext = M.load_extractor(space)
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    f = M.extract(ext, images, batch_size=2)
    assert f.shape == (3, 2048) and f.dtype == np.float64
    np.testing.assert_allclose(f[1:2], M.extract(ext, images[1:2]), rtol=1e-5, atol=1e-6)


def test_plan_uses_only_weights_on_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    plan = plan_metrics(BenchConfig())
    assert Metric.FID not in plan.metrics and Metric.LPIPS_DIVERSITY not in plan.metrics
    assert {Metric.FD_EFFNETL0, Metric.KID_EFFNETL0, Metric.FEAT_DIVERSITY, Metric.MIOU} <= set(plan.metrics)
    assert any(s.startswith("fid:") for s in plan.skipped)
    with pytest.raises(ValueError, match="inception-weights"):
        plan_metrics(BenchConfig(metrics=(Metric.FID,)))
    with pytest.raises(ValueError, match="does not exist"):
        plan_metrics(BenchConfig(inception_weights=str(tmp_path / "nope.pth")))
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / M.INCEPTION_FILE).write_bytes(b"x")
    assert Metric.FID in plan_metrics(BenchConfig()).metrics  # found in torch-fidelity's cache


def test_high_frequency_energy_measures_detail_finer_than_three_pixels():
    from bench.metrics import high_frequency_energy

    flat = np.full((2, 32, 32, 3), 128, np.uint8)
    assert high_frequency_energy(flat) == 0.0
    # a one-pixel checkerboard: every interior pixel differs from its 3x3 mean by 4 * 255 / 9
    yy, xx = np.mgrid[:200, :200]
    board = np.repeat((((yy + xx) % 2) * 255).astype(np.uint8)[None, :, :, None], 3, axis=3)
    assert abs(high_frequency_energy(board) - 4 * 255 / 9) < 3.0
    rng = np.random.default_rng(0)
    smooth = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, None, :, None], 64, axis=1).repeat(3, 3)
    grainy = np.clip(smooth.astype(int) + rng.normal(0, 8, smooth.shape), 0, 255).astype(np.uint8)
    assert high_frequency_energy(grainy) > high_frequency_energy(smooth) + 3  # speckle raises it
    assert high_frequency_energy(np.concatenate([flat, board[:, :32, :32]])) == pytest.approx(
        high_frequency_energy(board[:, :32, :32]) / 3, rel=1e-9)  # a mean over images (batch-independent)
