"""Closed forms of the Gaussian diffusion and oracle-driven samplers (Gaussian data has an analytic denoiser)."""

import pytest
import torch

from scdm.config import DiffusionConfig, NoiseSchedule, Spacing
from scdm.gaussian import Diffusion, get_beta_schedule, hybrid_loss, space_timesteps
from scdm.samplers import X0Processing, dynamic_threshold, process_x0, sample


def test_linear_schedule_endpoints_and_float64():
    b = get_beta_schedule(NoiseSchedule.LINEAR, 1000)
    assert b.dtype == torch.float64 and b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    c = get_beta_schedule(NoiseSchedule.COSINE, 1000)
    assert (c > 0).all() and (c <= 0.999).all() and torch.all(c[1:] >= c[:-1] - 1e-12)


def test_respacing_keeps_alpha_bar_of_kept_steps():
    use = space_timesteps(1000, 25, Spacing.SECTIONS)
    assert len(use) == 25 and use[0] == 0 and use[-1] == 999
    full = Diffusion.from_config(DiffusionConfig())
    sp = Diffusion.from_config(DiffusionConfig(), 25, Spacing.SECTIONS)
    assert sp.timesteps.tolist() == use
    assert torch.allclose(sp.alphas_cumprod, full.alphas_cumprod[use])
    ddim = Diffusion.from_config(DiffusionConfig(), 25)  # the reference's `ddim25` is the default rule
    assert ddim.timesteps.tolist() == list(range(0, 1000, 40))
    assert torch.allclose(ddim.alphas_cumprod, full.alphas_cumprod[ddim.timesteps])


@pytest.mark.parametrize("steps", [2, 3, 15, 40, 100, 700, 1000])
def test_quad_spacing_is_quadratic_with_exactly_n_distinct_steps(steps):
    use = space_timesteps(1000, steps, Spacing.QUAD)
    assert len(use) == steps and use == sorted(set(use)) and use[0] == 0 and use[-1] == 999
    gaps = [b - a for a, b in zip(use, use[1:])]
    assert all(b >= a - 1 for a, b in zip(gaps, gaps[1:]))  # growing up to rounding: fine near the data
    if 2 < steps < 1000:
        assert gaps[-1] > gaps[0]
    if steps == 15:  # round(999 (i / 14)^2)
        assert use[:5] == [0, 5, 20, 46, 82] and use[-2] == 861
        assert gaps[0] < space_timesteps(1000, 15, Spacing.SECTIONS)[1] / 10


def test_spacing_errors_name_the_setting():
    with pytest.raises(ValueError, match="spacing 'ddim'"):
        space_timesteps(1000, 999, Spacing.DDIM)
    with pytest.raises(ValueError, match="unknown timestep spacing"):
        space_timesteps(1000, 25, "even")


def test_posterior_matches_formulas():
    d = Diffusion.from_config(DiffusionConfig())
    i = torch.tensor([5, 500])
    x0, xt = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    mean, logvar = d.q_posterior(x0, xt, i)
    ab, ab_prev, beta = d.alphas_cumprod[i], d.alphas_cumprod_prev[i], d.betas[i]
    exp_mean = (beta * ab_prev.sqrt() / (1 - ab))[:, None, None, None] * x0 + \
        ((1 - ab_prev) * (1 - beta).sqrt() / (1 - ab))[:, None, None, None] * xt
    assert torch.allclose(mean, exp_mean.float(), atol=1e-5)
    assert torch.allclose(logvar.flatten(), torch.log(beta * (1 - ab_prev) / (1 - ab)).float(), atol=1e-5)
    # learned range: v = 1 gives log beta, v = -1 gives the clipped posterior log variance
    one = torch.ones(2, 3, 4, 4)
    assert torch.allclose(d.model_log_variance(one, i)[:, 0, 0, 0], torch.log(beta).float(), atol=1e-6)
    assert torch.allclose(d.model_log_variance(-one, i)[:, 0, 0, 0], logvar.flatten(), atol=1e-6)


def test_hybrid_loss_vb_term_trains_only_v():
    d = Diffusion.from_config(DiffusionConfig())
    x0 = torch.rand(3, 3, 8, 8) * 2 - 1
    noise = torch.randn_like(x0)
    i = torch.tensor([0, 10, 900])
    xt = d.q_sample(x0, i, noise)
    out = torch.randn(3, 6, 8, 8, requires_grad=True)
    loss = hybrid_loss(d, out, x0, xt, i, noise)
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    # the vb term's gradient reaches eps only through the mse: perfect eps -> eps grad is zero
    out2 = torch.cat([noise, torch.zeros_like(noise)], 1).requires_grad_(True)
    hybrid_loss(d, out2, x0, xt, i, noise).sum().backward()
    assert out2.grad[:, :3].abs().max() < 1e-6 and out2.grad[:, 3:].abs().max() > 0


def test_dynamic_threshold_and_extrapolation():
    x = torch.tensor([[[[3.0, -0.5], [0.2, 0.1]]]])
    y = dynamic_threshold(x, 0.5)
    assert y.abs().max() <= 1 and torch.allclose(dynamic_threshold(x * 0.1, 0.95), x * 0.1)
    cfg = X0Processing(extrapolation=0.8, dynamic_threshold=0.0)
    a, prev = process_x0(torch.full((1, 1, 1, 1), 0.1), None, cfg)
    b, prev = process_x0(torch.full((1, 1, 1, 1), 0.2), prev, cfg)
    assert a.item() == pytest.approx(0.1) and b.item() == pytest.approx(0.2 + 0.8 * 0.1)
    assert prev.item() == pytest.approx(0.28)


def _oracle(d_full: Diffusion, mu: float, s: float):
    """Ideal eps for x0 ~ N(mu, s^2) per pixel: E[eps | x_t]."""
    acp = d_full.alphas_cumprod

    def denoise(x, t):
        a = acp[t.long()].float().reshape(-1, 1, 1, 1)
        eps = (1 - a).sqrt() * (x - a.sqrt() * mu) / (a * s * s + 1 - a)
        v = torch.zeros_like(x) - 1.0  # posterior variance: exact for a Gaussian's ancestral step at small steps
        return eps, v
    return denoise


@pytest.mark.parametrize("kind,steps", [("ddim", 50), ("dpmpp_2m", 25), ("ancestral", 100)])
def test_samplers_hit_gaussian_target(kind, steps):
    mu, s = 0.1, 0.4
    full = Diffusion.from_config(DiffusionConfig())
    d = Diffusion.from_config(DiffusionConfig(), steps)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 64, 64, generator=g)
    out = sample(kind, _oracle(full, mu, s), d, x, lambda: torch.randn(1, 3, 64, 64, generator=g),
                 x0_processing=X0Processing(0.0, 0.0))
    assert out.mean().item() == pytest.approx(mu, abs=0.02)
    assert out.std().item() == pytest.approx(s, rel=0.12)


def test_ddim_eta0_is_deterministic_given_start():
    full = Diffusion.from_config(DiffusionConfig())
    d = Diffusion.from_config(DiffusionConfig(), 10)
    x = torch.randn(1, 3, 8, 8)
    a = sample("ddim", _oracle(full, 0.0, 0.5), d, x.clone(), lambda: torch.randn(1, 3, 8, 8))
    b = sample("ddim", _oracle(full, 0.0, 0.5), d, x.clone(), lambda: torch.randn(1, 3, 8, 8))
    assert torch.equal(a, b)


def test_unknown_sampler_is_an_error():
    d = Diffusion.from_config(DiffusionConfig(), 2)
    with pytest.raises(ValueError, match="unknown sampler"):
        sample("euler", lambda x, t: (x, x), d, torch.zeros(1, 3, 2, 2), lambda: torch.zeros(1, 3, 2, 2))
