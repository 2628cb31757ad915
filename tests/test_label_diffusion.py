"""Label Diffusion: schedule closed forms, keep rates of q_sample, kappa estimation and loading."""
import numpy as np
import pytest
import torch

from scdm.config import LabelDiffusionConfig, LabelSchedule, LabelSpec
from scdm.label_diffusion import LabelDiffusion, drop_probability, estimate_kappa, label_statistics, load_kappa
from scdm.labels import encode, instance_edges


def test_classwise_schedule_closed_form():
    tau = torch.linspace(0, 1, 11, dtype=torch.float64)
    kappa = torch.tensor([0.5, 1.0, 4.0, 1000.0], dtype=torch.float64)
    p = drop_probability(tau, kappa)
    assert torch.allclose(p[:, 0], tau) and torch.allclose(p[:, 1], tau)  # kappa <= 1: linear
    assert torch.allclose(p[:, 2], (4.0 ** tau - 1) / 3)
    assert torch.allclose(p[0], torch.zeros(4, dtype=torch.float64)) and torch.allclose(p[-1], torch.ones(4, dtype=torch.float64))
    assert torch.all(p[1:] >= p[:-1])  # monotone in t
    assert torch.all(p[5, 3] < p[5, 2]) and p[5, 2] < p[5, 1]  # larger kappa keeps the class longer


def test_q_sample_keep_rates_match_gamma():
    ld = LabelDiffusion(LabelDiffusionConfig(LabelSchedule.CLASSWISE, (1.0, 50.0)), num_classes=2)
    labels = torch.zeros(1, 200, 200, dtype=torch.long)
    labels[:, :, 100:] = 1
    y0 = torch.cat([encode(labels, LabelSpec(num_classes=2)), torch.ones(1, 1, 200, 200)], 1)  # + an edge channel
    t = torch.tensor([600])
    yt = ld.q_sample(y0, t, generator=torch.Generator().manual_seed(0), num_classes=2)
    keep = yt[:, :2].sum(1)
    for c in range(2):
        rate = keep[labels == c].float().mean().item()
        assert rate == pytest.approx(ld.gamma[600, c].item(), abs=0.01)
    assert torch.equal(yt[:, 2], y0[:, 2])  # the edge channel is never diffused
    assert set(yt[:, :2].unique().tolist()) <= {0.0, 1.0}
    # one draw per pixel shared by all channels: a dropped pixel is all-zero, a kept one intact
    assert torch.equal(yt[:, :2], y0[:, :2] * keep[:, None])


def test_q_sample_seeded_and_zero_pixels_stay_zero():
    ld = LabelDiffusion(LabelDiffusionConfig(LabelSchedule.UNIFORM), num_classes=3)
    y0 = torch.zeros(2, 3, 16, 16)
    y0[:, 1] = 1
    y0[:, :, :4] = 0
    t = torch.tensor([300, 300])
    a = ld.q_sample(y0, t, generator=torch.Generator().manual_seed(5))
    b = ld.q_sample(y0, t, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and (a[:, :, :4] == 0).all()
    # the reference's uniform schedule: cumprod of 1 - 1 / (T - i), i.e. gamma_t = 1 - (t + 1) / T
    assert torch.allclose(ld.gamma[0], torch.tensor(0.999)) and ld.gamma[999].eq(0).all()
    assert torch.allclose(ld.gamma[499], torch.tensor(0.5))
    off = LabelDiffusion(LabelDiffusionConfig(LabelSchedule.NONE), num_classes=3)
    assert off.q_sample(y0, t) is y0


def test_classwise_needs_one_kappa_per_class():
    with pytest.raises(ValueError, match="one kappa per class"):
        LabelDiffusion(LabelDiffusionConfig(LabelSchedule.CLASSWISE, (1.0,)), num_classes=3)


def test_kappa_from_known_statistics():
    # class 0 everywhere in every image, class 1 covers a quarter of half the images, class 2 never appears
    maps = torch.zeros(4, 8, 8, dtype=torch.long)
    maps[:2, :4, :4] = 1
    area, presence = label_statistics([maps], 3)
    assert presence.tolist() == [1.0, 0.5, 0.0]
    assert area[1].item() == pytest.approx(0.25) and area[0].item() == pytest.approx((2 * 0.75 + 2 * 1.0) / 4)
    kappa = estimate_kappa(area, presence, kappa_max=1e4)
    assert kappa[1].item() == pytest.approx(1 / (0.5 * 0.25))
    assert kappa[0].item() == pytest.approx(1 / 0.875) and kappa[2].item() == 1e4


def test_load_published_kappa(tmp_path):
    arr = np.linspace(0.5, 100, 151)
    np.save(tmp_path / "ade20k_psiphi.npy", arr)
    k = load_kappa(tmp_path / "ade20k_psiphi.npy", 151, unlabeled_index=150)
    assert len(k) == 151 and k[150] == 0.5 and k[3] == pytest.approx(arr[3])
    with pytest.raises(ValueError, match="151 entries"):
        load_kappa(tmp_path / "ade20k_psiphi.npy", 150)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="cannot read"):
        load_kappa(tmp_path / "bad.npy", 151)


def test_encodings_ade20k_and_null():
    from scdm.presets import ade20k_labels, world_labels
    ade = ade20k_labels()
    y = encode(torch.tensor([[[0, 1, 150]]]), ade)
    assert y.shape == (1, 151, 1, 3) and y[0, 150, 0, 0] == 1 and y[0, 0, 0, 1] == 1 and y[0, 149, 0, 2] == 1
    w = world_labels()
    y = encode(torch.tensor([[[0, 3]]]), w)
    assert y[0, :, 0, 0].sum() == 0 and y[0, 1, 0, 1] == 1  # unlabeled -> all-zero; sky (3) is channel 1
    with pytest.raises(ValueError, match="not classes of this model"):
        encode(torch.tensor([[[4]]]), w)
    with pytest.raises(ValueError, match="integer"):
        encode(torch.zeros(1, 2, 2), w)


def test_instance_edges_four_neighbour_both_sides():
    inst = torch.tensor([[[1, 1, 2], [1, 1, 2], [3, 3, 3]]])
    e = instance_edges(inst)[0, 0]
    assert e.tolist() == [[0, 1, 1], [1, 1, 1], [1, 1, 1]]
