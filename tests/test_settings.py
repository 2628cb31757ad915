"""Sampling settings resolve against the card in one place: the reference modes, the guidance rule, bad input."""
import dataclasses

import pytest
import torch

from scdm.config import Precision, Sampler, Spacing
from scdm.guidance import ConditionalDenoiser, apply_guidance, cfg_denoiser
from scdm.presets import OFFICIAL_CARDS, get_preset
from scdm.settings import SamplingSettings, identity, resolve


def test_official_card_defaults_are_the_reference_25_step_mode():
    card = OFFICIAL_CARDS["ade20k"]()
    r = resolve(card, None, "cpu")
    assert (r.sampler, r.steps, r.spacing, r.guidance) == (Sampler.ANCESTRAL, 25, Spacing.DDIM, 1.5)
    assert (r.extrapolation, r.dynamic_threshold, r.eta) == (0.8, 0.95, 0.0)
    assert r.precision == Precision.FP32 and r.label_diffusion  # auto-fp16: fp16 on GPUs only
    assert card.sampler.precision == Precision.AUTO_FP16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_official_card_runs_fp16_on_a_gpu():
    assert resolve(OFFICIAL_CARDS["ade20k"](), None, "cuda").precision == Precision.FP16


def test_steps_equal_to_T_is_the_reference_1000_step_mode():
    card = OFFICIAL_CARDS["coco_stuff"]()
    r = resolve(card, SamplingSettings(steps=1000), "cpu")
    assert (r.extrapolation, r.dynamic_threshold) == (0.0, 0.0)  # no x0 tricks, plain clipping
    # asked for explicitly, they still apply
    r = resolve(card, SamplingSettings(steps=1000, extrapolation=0.8, dynamic_threshold=0.95), "cpu")
    assert (r.extrapolation, r.dynamic_threshold) == (0.8, 0.95)


def test_embedded_cards_keep_their_tuned_defaults():
    card = get_preset("embedded-scdm").card
    r = resolve(card, None, "cpu")
    assert (r.sampler, r.steps, r.spacing, r.eta, r.extrapolation, r.guidance) == (
        Sampler.DDIM, 20, Spacing.QUAD, 1.0, 0.0, 1.75)
    sdm = resolve(get_preset("embedded-sdm").card, None, "cpu")
    assert not sdm.label_diffusion
    # DDIM and DPM-Solver++ never extrapolate unless asked; eta only matters to DDIM
    assert resolve(OFFICIAL_CARDS["ade20k"](), SamplingSettings(sampler="ddim"), "cpu").extrapolation == 0.0
    assert resolve(card, SamplingSettings(sampler="ancestral"), "cpu").eta == 0.0


def test_identity_is_plain_json_and_tells_settings_apart():
    card = OFFICIAL_CARDS["ade20k"]()
    a = identity(resolve(card, None, "cpu"))
    b = identity(resolve(card, SamplingSettings(spacing="sections"), "cpu"))
    assert a["spacing"] == "ddim" and b["spacing"] == "sections" and a != b
    assert set(a) == {f.name for f in dataclasses.fields(SamplingSettings)}
    with pytest.raises(ValueError, match="resolved"):
        identity(SamplingSettings(steps=3))


def test_bad_settings_name_the_field():
    card = OFFICIAL_CARDS["ade20k"]()
    with pytest.raises(ValueError, match="steps must be a whole number"):
        SamplingSettings(steps="25")
    with pytest.raises(ValueError, match="guidance must be a number"):
        SamplingSettings(guidance="1.5")
    with pytest.raises(ValueError, match="unknown spacing 'even'"):
        SamplingSettings(spacing="even")
    with pytest.raises(ValueError, match="precision 'fp16' needs a GPU"):
        resolve(card, SamplingSettings(precision="fp16"), "cpu")
    with pytest.raises(ValueError, match="label_diffusion=False"):
        resolve(get_preset("embedded-sdm").card, SamplingSettings(label_diffusion=True), "cpu")
    with pytest.raises(ValueError, match="steps must be in"):
        resolve(card, SamplingSettings(steps=1001), "cpu")
    with pytest.raises(ValueError, match="no integer stride gives exactly 999"):
        resolve(card, SamplingSettings(steps=999), "cpu")  # checked when settings resolve, before any sampling
    with pytest.raises(ValueError, match="extrapolation must be a number >= 0"):
        resolve(card, SamplingSettings(extrapolation=float("nan")), "cpu")


def test_guidance_applies_only_above_one_as_in_the_reference():
    eps_c, eps_u = torch.ones(2), torch.zeros(2)
    assert torch.equal(apply_guidance(eps_c, eps_u, 1.5), torch.full((2,), 1.5))
    for s in (0.0, 0.5, 1.0):
        assert torch.equal(apply_guidance(eps_c, eps_u, s), eps_c)
    calls = []

    def model_fn(x, t, y):
        calls.append(float(y.sum()))
        return x * 0 + y.sum(), x

    x, t, y = torch.zeros(1, 3, 2, 2), torch.zeros(1), torch.ones(1, 2, 2, 2)
    eps, _ = cfg_denoiser(model_fn, y, torch.zeros_like(y), 0.7)(x, t)
    assert calls == [8.0] and eps.eq(8).all()  # s <= 1: the null branch never runs
    eps, _ = cfg_denoiser(model_fn, y, torch.zeros_like(y), 2.0)(x, t)
    assert eps.eq(16).all()  # 0 + 2 (8 - 0)


def test_fused_denoiser_skips_the_null_rows_for_s_at_most_one(tiny_checkpoint):
    from scdm.pipeline import load_pipeline

    pipe = load_pipeline(tiny_checkpoint, device="cpu")
    y = torch.zeros(1, 12, 32, 32)
    y[:, 3] = 1
    x, t = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.full((1,), 500.0)
    gens = lambda: [torch.Generator().manual_seed(1)]  # noqa: E731
    cond = ConditionalDenoiser(pipe.model, y, None, gens(), guidance=1.0)(x, t)
    below = ConditionalDenoiser(pipe.model, y, None, gens(), guidance=0.3)(x, t)
    assert torch.equal(cond[0], below[0]) and torch.equal(cond[1], below[1])
