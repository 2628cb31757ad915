"""Numerical parity with the official SCDM code (github.com/mlvlab/SCDM, built on openai guided-diffusion).

The fixtures in tests/fixtures/reference/ hold numbers produced by running the official modules on the CPU
(`python tools/reference_fixtures.py <checkout>`; its docstring describes every fixture). These tests rebuild
the same inputs (closed-form toy model, pseudo-noise, label map) and compare the project's results:

* timesteps: `space_timesteps` for the reference's "ddimN" and plain "N" respacing strings;
* trajectories: the ancestral sampler with classifier-free guidance, extrapolation and dynamic thresholding
  against the reference's `p_sample_loop` in its 25-step and 1000-step modes (max abs diff <= 1e-5);
* label gamma: Label Diffusion keep probabilities, class-wise (published kappa arrays) and uniform (<= 1e-6).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scdm.config import DiffusionConfig, LabelDiffusionConfig, LabelSchedule, Spacing
from scdm.gaussian import Diffusion, space_timesteps
from scdm.guidance import cfg_denoiser
from scdm.label_diffusion import LabelDiffusion, load_kappa
from scdm.samplers import X0Processing, sample_ancestral

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
TRAJECTORY_TOL = 1e-5
GAMMA_TOL = 1e-6


def _load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


TIMESTEPS = _load("timesteps.json")["timesteps"]
TRAJECTORIES = _load("trajectories.json")
GAMMA = _load("label_gamma.json")


def _worst(actual, expected) -> tuple[float, tuple[int, ...]]:
    """(max |actual - expected|, index of the worst entry)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"shape {a.shape} != reference {e.shape}"
    diff = np.abs(a - e)
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return float(diff[idx]), tuple(int(i) for i in idx)


# ------------------------------------------------------------------------------------------- timesteps


def _spec(spec: str) -> tuple[int, Spacing]:
    if spec.startswith("ddim"):
        return int(spec[len("ddim"):]), Spacing.DDIM
    return int(spec), Spacing.SECTIONS


@pytest.mark.parametrize("spec", sorted(TIMESTEPS))
def test_space_timesteps_matches_reference(spec):
    steps, spacing = _spec(spec)
    ours = list(space_timesteps(1000, steps, spacing))
    ref = TIMESTEPS[spec]
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(ours, ref)) if a != b]
    assert ours == ref, f"{spec}: {len(ours)} vs {len(ref)} steps; first differences (index, ours, ref): {diff[:5]}"


@pytest.mark.parametrize("spec", sorted(TIMESTEPS))
def test_diffusion_from_config_visits_reference_timesteps(spec):
    steps, spacing = _spec(spec)
    diffusion = Diffusion.from_config(DiffusionConfig(), steps=steps, spacing=spacing)
    assert diffusion.timesteps.tolist() == TIMESTEPS[spec]
    assert diffusion.num_steps == len(TIMESTEPS[spec])


def test_default_25_step_mode_is_ddim25():
    diffusion = Diffusion.from_config(DiffusionConfig(), steps=25, spacing=Spacing.DDIM)
    assert diffusion.timesteps.tolist() == TIMESTEPS["ddim25"] == list(range(0, 1000, 40))


# ---------------------------------------------------------------------------------------- trajectories


def _pseudo_noise(k: int, shape) -> torch.Tensor:
    """noise(k) = float32(1.2 sin(1.7 k + 0.37 arange(n)) in float64), as documented in the fixture."""
    n = math.prod(shape)
    v = 1.2 * torch.sin(1.7 * k + 0.37 * torch.arange(n, dtype=torch.float64))
    return v.to(torch.float32).reshape(shape)


def _toy_fn(num_classes: int):
    """The fixture's closed-form model as (x, t, y) -> (eps, v); t is the original timestep."""
    weights = torch.arange(1, num_classes + 1, dtype=torch.float32).reshape(1, num_classes, 1, 1)

    def fn(x, t, y):
        ybar = (y * weights).sum(1, keepdim=True)  # 0 for the all-zero null label
        coef = (torch.cos(3.0 * t.to(torch.float64) / 1000.0) * 0.1).to(torch.float32).reshape(-1, 1, 1, 1)
        return 0.5 * torch.tanh(x) + coef * ybar, 0.5 * torch.tanh(x)

    return fn


def _label(fixture: dict) -> torch.Tensor:
    idx = torch.tensor(fixture["label_index"])
    return torch.nn.functional.one_hot(idx, fixture["num_classes"]).permute(2, 0, 1)[None].to(torch.float32)


def _diffusion_for(mode: dict) -> Diffusion:
    spec = mode["timestep_respacing"]
    if not spec:
        return Diffusion.from_config(DiffusionConfig())
    steps, spacing = _spec(spec)
    return Diffusion.from_config(DiffusionConfig(), steps=steps, spacing=spacing)


def _x0_processing(mode: dict) -> X0Processing:
    # the reference disables both with -1 (-> plain clip of x0 to [-1, 1]); ours with 0
    return X0Processing(extrapolation=max(mode["extrapolation"], 0.0),
                        dynamic_threshold=max(mode["dynamic_threshold"], 0.0))


@pytest.mark.parametrize("name", sorted(TRAJECTORIES["modes"]))
def test_ancestral_trajectory_matches_reference(name):
    fx = TRAJECTORIES
    mode = fx["modes"][name]
    shape = tuple(fx["shape"])
    diffusion = _diffusion_for(mode)
    assert diffusion.timesteps.tolist() == mode["timesteps"]
    n = diffusion.num_steps
    assert n == mode["num_steps"]

    x_T = _pseudo_noise(0, shape)
    d, idx = _worst(x_T.flatten(), mode["x_T"])
    assert d == 0.0, f"x_T rebuilt differently from the fixture (diff {d:.3g} at {idx})"

    calls = [0]

    def noise_fn() -> torch.Tensor:
        calls[0] += 1
        return _pseudo_noise(calls[0], shape)

    y = _label(fx)
    denoise = cfg_denoiser(_toy_fn(fx["num_classes"]), y, torch.zeros_like(y), mode["guidance"])
    states: dict[int, torch.Tensor] = {}  # completed steps -> x after them
    x0s: dict[int, torch.Tensor] = {}  # the step number that produced it -> processed x0

    def callback(info):
        assert info.num_steps == n
        states[info.step] = info.x_t.clone()  # x_t before step `step` = x after `step` completed steps
        x0s[info.step + 1] = info.x0.clone()

    with torch.no_grad():
        final = sample_ancestral(denoise, diffusion, x_T.clone(), noise_fn,
                                 x0_processing=_x0_processing(mode), callback=callback)
    states[n] = final
    # the reference draws randn_like at every step, the last one multiplied by 0; we skip that draw
    assert calls[0] == mode["randn_like_calls"] - 1 == n - 1

    report = []
    for j, after in enumerate(mode["record_after"]):
        dx, ix = _worst(states[after].flatten(), mode["x"][j])
        d0, i0 = _worst(x0s[after].flatten(), mode["x0"][j])
        report.append((after, dx, ix, d0, i0))
    worst = max(report, key=lambda r: max(r[1], r[3]))
    msg = (f"{name}: worst |x - ref| = {max(r[1] for r in report):.3g}, worst |x0 - ref| = "
           f"{max(r[3] for r in report):.3g}; at step {worst[0]}/{n} (t = {mode['timesteps'][n - worst[0]]}): "
           f"x diff {worst[1]:.3g} at flat index {worst[2]}, x0 diff {worst[3]:.3g} at {worst[4]}; "
           f"per recorded step (after, dx, dx0): {[(r[0], f'{r[1]:.2g}', f'{r[3]:.2g}') for r in report]}")
    assert max(max(r[1], r[3]) for r in report) <= TRAJECTORY_TOL, msg


# ---------------------------------------------------------------------------------------- label gamma


def _kappa(dataset: str, tmp_path: Path) -> tuple[float, ...]:
    """The fixture's kappa array through `load_kappa`, forcing the entries the reference forces to 0.5."""
    entry = GAMMA["classwise"][dataset]
    forced = entry["forced_index"]
    assert len(forced) <= 1 and all(v == 0.5 for v in entry["forced_value"])
    path = tmp_path / f"{dataset}_psiphi.npy"
    np.save(path, np.asarray(entry["kappa_raw"], dtype=np.float64))
    return load_kappa(path, entry["num_classes"], unlabeled_index=forced[0] if forced else None)


@pytest.mark.parametrize("dataset", sorted(GAMMA["classwise"]))
@pytest.mark.parametrize("grid", ["ddim25", "full1000"])
def test_classwise_gamma_matches_reference(dataset, grid, tmp_path):
    entry = GAMMA["classwise"][dataset]
    k = entry["num_classes"]
    kappa = _kappa(dataset, tmp_path)
    ld = LabelDiffusion(LabelDiffusionConfig(LabelSchedule.CLASSWISE, kappa), k, 1000)
    t = torch.tensor(entry[grid]["t"])
    if grid == "ddim25":
        assert t.tolist() == Diffusion.from_config(DiffusionConfig(), steps=25, spacing=Spacing.DDIM).timesteps.tolist()
    ours = ld.gamma[t]
    d, (ti, c) = _worst(ours, entry[grid]["gamma"])
    assert d <= GAMMA_TOL, (f"{dataset} {grid}: worst |gamma - ref| = {d:.3g} at t = {int(t[ti])}, class {c} "
                            f"(kappa {kappa[c]!r}): ours {float(ours[ti, c])!r}, "
                            f"reference {entry[grid]['gamma'][ti][c]!r}")


@pytest.mark.parametrize("spec", sorted(GAMMA["uniform"]))
def test_uniform_gamma_matches_reference(spec):
    entry = GAMMA["uniform"][spec]
    steps, spacing = _spec(spec)
    diffusion = Diffusion.from_config(DiffusionConfig(), steps=steps, spacing=spacing)
    assert diffusion.timesteps.tolist() == entry["t"]
    k = 4
    ld = LabelDiffusion(LabelDiffusionConfig(LabelSchedule.UNIFORM), k, 1000).respaced(diffusion.timesteps)
    ours = ld.gamma[diffusion.timesteps]  # (N, K), row i = respaced step i
    expected = np.repeat(np.asarray(entry["gamma"])[:, None], k, axis=1)
    d, (i, c) = _worst(ours, expected)
    assert d <= GAMMA_TOL, (f"uniform {spec}: worst |gamma - ref| = {d:.3g} at respaced step {i} "
                            f"(t = {entry['t'][i]}): ours {float(ours[i, c])!r}, reference {entry['gamma'][i]!r}")
