"""Generate the reference-parity fixtures in tests/fixtures/reference/ from the official SCDM code.

Usage::

    git -C <mirror of github.com/mlvlab/SCDM> archive HEAD | tar -x -C SCDM_CHECKOUT
    python tools/reference_fixtures.py SCDM_CHECKOUT [--out tests/fixtures/reference]

The official checkout (openai guided-diffusion plus the SCDM changes) is imported from the given directory
and run on the CPU; only the numbers it produces are written here, none of its code. The only stand-in is a
tiny `einops` shim (its `rearrange(x, "b ... -> b (...)")`, the one pattern `dynamic_thresholding` uses, is
`x.reshape(len(x), -1)`), so nothing has to be installed. The output is deterministic: no random numbers are
drawn; every "random" input is a closed-form function documented below and inside the fixtures. The tests
(`tests/test_reference_parity.py`) only read the JSON; they never import this script or the official code.

Fixtures (float64 JSON; values rounded to 12 significant digits unless noted):

timesteps.json
    The set returned by guided-diffusion's `respace.space_timesteps(1000, X)`, sorted, for
    X in "ddim25", "ddim50" (the DDIM-paper fixed stride) and "25", "250", "1000" (one evenly strided section,
    Python `round` of an accumulated fractional index).

trajectories.json
    Full ancestral trajectories of the official `SpacedDiffusion.p_sample_loop_progressive` (the generator
    `p_sample_loop` consumes; the final sample is also checked against `p_sample_loop` itself). Diffusion as
    `script_util.create_gaussian_diffusion(steps=1000, learn_sigma=True, noise_schedule="linear",
    predict_xstart=False, rescale_timesteps=False, cond_diffuse=False)`: linear betas, eps prediction,
    LEARNED_RANGE variance, Label Diffusion off. Model kwargs as `image_sample.py` sets them:
    {"y", "s", "dynamic_threshold", "extrapolation"}; clip_denoised=True.
      * ddim25_s1.5   : timestep_respacing "ddim25", s=1.5, extrapolation 0.8, dynamic_threshold 0.95
      * full1000_s1.5 : no respacing (1000 steps), s=1.5, extrapolation -1, dynamic_threshold -1
                        (the reference's defaults: no extrapolation, plain clip of x0 to [-1, 1])
      * ddim25_s1.0   : as ddim25_s1.5 with s=1.0 (the reference guides only when s > 1)
    Toy model (closed form, float32 tensors; t is the ORIGINAL timestep, int64, as `_WrappedModel` passes it):
        ybar[b, h, w] = sum_c (c + 1) * y[b, c, h, w]            (0 for the all-zero null label)
        coef          = float32(cos(3 * float64(t) / 1000) * 0.1)   (computed in float64, cast)
        eps           = 0.5 * tanh(x) + coef * ybar  (ybar broadcast to the 3 channels)
        v             = 0.5 * tanh(x)                 (variance interpolation in [-1, 1])
        output        = cat([eps, v], dim=1)          (6 channels)
    Label: K=3 classes, the fixed 4x4 class map `label_index` one-hot encoded into y (1, 3, 4, 4), float32.
    Pseudo-noise: noise(k) = float32(1.2 * sin(1.7 * k + 0.37 * arange(48), float64)).reshape(1, 3, 4, 4).
        x_T = noise(0); the k-th call (k = 1, 2, ...) of `torch.randn_like` inside the reference loop returns
        noise(k). The reference draws randn_like at EVERY step, including the last one (t=0) where it is
        multiplied by zero, so a sampler that draws only for steps i > 0 consumes noise(1) .. noise(N-1).
    Stored per mode: x_T, `record_after` (numbers of completed steps), `x[j]` = the sample after
    record_after[j] steps (record_after[-1] = N: the final sample) and `x0[j]` = the processed x0 prediction
    (`pred_xstart`, after extrapolation and thresholding) of the step that produced x[j]. Values are the
    float32 results written as float64 (not rounded).

label_gamma.json
    Keep probabilities gamma_t(c) of Label Diffusion as the official `GaussianDiffusion.q_sample(...,
    option=...)` computes them; captured from the expression it adds to the (here: captured) noise, so each
    value is exactly what the reference thresholds with its uniform draw.
      * classwise ("discrete_zero_classwise", dataset_mode ade20k / celeba / coco): the reference loads
        `<dataset>_psiphi.npy` (the kappa array, stored here under `kappa_raw`) and sets the LAST entry to 0.5
        when dataset_mode is ade20k or coco (the unlabeled class; `forced_index`), not for celeba. It maps
        respaced indices through `timestep_map` and computes, in float64 with t/1000 evaluated in float32,
            1 - gamma = clamp_max((kappa^(t/1000) - 1) / (kappa - 1 + 1e-7), t/1000).
        Evaluated for every class (one-hot maps fed to q_sample) under "ddim25" at respaced indices 0..24
        (original t listed under `t`) and under the full 1000-step diffusion at t = 0, 50, ..., 950, 999.
      * uniform ("discrete_zero_uniform"): gammas = cumprod(1 - 1 / linspace(N, 1, N)) over the N steps of the
        diffusion IN USE, indexed by the respaced step (not mapped through timestep_map), extracted as float32
        by `_extract_into_tensor`. Same for every class; stored once per step for "ddim25", "25" and "1000".
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "reference"

LABEL_INDEX = [[0, 0, 1, 2],
               [0, 1, 1, 2],
               [2, 2, 1, 0],
               [1, 0, 2, 2]]
K = 3
SHAPE = (1, 3, 4, 4)
FULL_T = list(range(0, 1000, 50)) + [999]


def r12(v: float) -> float:
    return float(f"{v:.12g}")


# ----------------------------------------------------------------------------------------------- imports


def import_reference(ref_dir: Path):
    """Import guided_diffusion.gaussian_diffusion and .respace from the official checkout."""
    if "einops" not in sys.modules:
        shim = types.ModuleType("einops")

        def rearrange(x, pattern):
            if pattern.replace(" ", "") != "b...->b(...)":
                raise NotImplementedError(f"einops shim: unsupported pattern {pattern!r}")
            return x.reshape(x.shape[0], -1)

        shim.rearrange = rearrange
        sys.modules["einops"] = shim
    sys.path.insert(0, str(ref_dir))
    import guided_diffusion.gaussian_diffusion as gd  # noqa: E402
    import guided_diffusion.respace as respace  # noqa: E402
    return gd, respace


def make_diffusion(gd, respace, spacing, cond_opt="", dataset_mode="ade20k"):
    """SpacedDiffusion as script_util.create_gaussian_diffusion builds it (learn_sigma, linear, eps)."""
    betas = gd.get_named_beta_schedule("linear", 1000)
    spacing = spacing or [1000]
    return respace.SpacedDiffusion(
        use_timesteps=respace.space_timesteps(1000, spacing),
        betas=betas,
        model_mean_type=gd.ModelMeanType.EPSILON,
        model_var_type=gd.ModelVarType.LEARNED_RANGE,
        loss_type=gd.LossType.MSE,
        rescale_timesteps=False,
        cond_diffuse=False,
        cond_opt=cond_opt,
        no_instance=True,
        dataset_mode=dataset_mode,
    )


# ------------------------------------------------------------------------------------------- timesteps


def timesteps_fixture(respace) -> dict:
    out = {}
    for spec in ["ddim25", "ddim50", "25", "250", "1000"]:
        out[spec] = sorted(int(t) for t in respace.space_timesteps(1000, spec))
    return {"description": "sorted(guided_diffusion.respace.space_timesteps(1000, spec))", "timesteps": out}


# ---------------------------------------------------------------------------------------- trajectories


def pseudo_noise(k: int) -> torch.Tensor:
    v = 1.2 * torch.sin(1.7 * k + 0.37 * torch.arange(48, dtype=torch.float64))
    return v.to(torch.float32).reshape(SHAPE)


def onehot_label() -> torch.Tensor:
    idx = torch.tensor(LABEL_INDEX)
    return torch.nn.functional.one_hot(idx, K).permute(2, 0, 1)[None].to(torch.float32)


def toy_model(x, t, y):
    weights = torch.arange(1, K + 1, dtype=torch.float32).reshape(1, K, 1, 1)
    ybar = (y * weights).sum(1, keepdim=True)
    coef = (torch.cos(3.0 * t.to(torch.float64) / 1000.0) * 0.1).to(torch.float32).reshape(-1, 1, 1, 1)
    eps = 0.5 * torch.tanh(x) + coef * ybar
    v = 0.5 * torch.tanh(x)
    return torch.cat([eps, v], dim=1)


class _ToyModule:
    """Callable with the signature p_mean_variance uses: model(x, t, y=...)."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t, y=None, **_):
        self.calls.append(int(t[0]))
        return toy_model(x, t, y)


@contextlib.contextmanager
def injected_randn_like(counter: list):
    orig = torch.randn_like

    def fake(x, *args, **kwargs):
        counter[0] += 1
        return pseudo_noise(counter[0]).to(x.dtype).expand_as(x).clone()

    torch.randn_like = fake
    try:
        yield
    finally:
        torch.randn_like = orig


def run_mode(gd, respace, spacing, s, extrapolation, dynamic_threshold, every) -> dict:
    diffusion = make_diffusion(gd, respace, spacing)
    n = diffusion.num_timesteps

    def kwargs():
        return {"y": onehot_label(), "s": s, "dynamic_threshold": dynamic_threshold, "extrapolation": extrapolation}

    model = _ToyModule()
    counter = [0]
    xs, x0s, after = [], [], []
    with injected_randn_like(counter):
        for k, out in enumerate(diffusion.p_sample_loop_progressive(
                model, SHAPE, noise=pseudo_noise(0), clip_denoised=True, model_kwargs=kwargs(), device="cpu"), 1):
            if k % every == 0 or k == n:
                after.append(k)
                xs.append(out["sample"].clone())
                x0s.append(out["pred_xstart"].clone())
    assert counter[0] == n, (counter[0], n)
    assert all(x.dtype == torch.float32 for x in xs)
    expected_calls = 2 * n if s > 1.0 else n
    assert len(model.calls) == expected_calls, (len(model.calls), expected_calls)
    # the same run through p_sample_loop itself (fresh kwargs: extrapolation keeps state in them)
    counter2 = [0]
    with injected_randn_like(counter2):
        final = diffusion.p_sample_loop(_ToyModule(), SHAPE, noise=pseudo_noise(0), clip_denoised=True,
                                        model_kwargs=kwargs(), device="cpu")
    assert torch.equal(final, xs[-1]), "p_sample_loop and p_sample_loop_progressive disagree"
    return {
        "timestep_respacing": spacing or "",
        "num_steps": n,
        "timesteps": [int(t) for t in diffusion.timestep_map],
        "guidance": s,
        "extrapolation": extrapolation,
        "dynamic_threshold": dynamic_threshold,
        "clip_denoised": True,
        "randn_like_calls": counter[0],
        "model_t_first_last": [model.calls[0], model.calls[-1]],
        "x_T": [float(v) for v in pseudo_noise(0).flatten()],
        "record_after": after,
        "x": [[float(v) for v in x.flatten()] for x in xs],
        "x0": [[float(v) for v in x.flatten()] for x in x0s],
    }


def trajectories_fixture(gd, respace) -> dict:
    return {
        "description": "official SpacedDiffusion.p_sample_loop_progressive with a closed-form toy model and "
                       "injected noise; see tools/reference_fixtures.py",
        "shape": list(SHAPE),
        "num_classes": K,
        "label_index": LABEL_INDEX,
        "toy_model": "ybar = sum_c (c+1) y_c; coef = float32(cos(3*float64(t)/1000)*0.1); "
                     "eps = 0.5*tanh(x) + coef*ybar; v = 0.5*tanh(x); t = original timestep",
        "noise": "noise(k) = float32(1.2*sin(1.7*k + 0.37*arange(48)) in float64).reshape(1,3,4,4); "
                 "x_T = noise(0); k-th randn_like call (k>=1) -> noise(k); one call per step incl. t=0",
        "modes": {
            "ddim25_s1.5": run_mode(gd, respace, "ddim25", 1.5, 0.8, 0.95, every=5),
            "full1000_s1.5": run_mode(gd, respace, None, 1.5, -1.0, -1.0, every=100),
            "ddim25_s1.0": run_mode(gd, respace, "ddim25", 1.0, 0.8, 0.95, every=5),
        },
    }


# ---------------------------------------------------------------------------------------- label gamma


class _Capture:
    """Stands in for q_sample's `noise`; captures the tensor the reference adds to it (the gammas)."""

    def __init__(self, shape):
        self.shape = shape
        self.value = None

    def __radd__(self, other):
        self.value = other.detach().clone()
        return other


def captured_gamma(diffusion, t_idx: list[int], option: str, k: int) -> np.ndarray:
    """(len(t_idx), k) gammas: one batch row per timestep, one pixel per class."""
    b = len(t_idx)
    x = torch.eye(k, dtype=torch.float32).reshape(1, k, 1, k).repeat(b, 1, 1, 1)  # pixel j has class j
    noise = _Capture((b, 1, k, 1))  # q_sample permutes to b h w c: noise is (B, H, W, 1)
    diffusion.q_sample(x, torch.tensor(t_idx, dtype=torch.long), noise=noise, option=option)
    g = noise.value
    return g.reshape(b, k).to(torch.float64).numpy()


def label_gamma_fixture(gd, respace, ref_dir: Path) -> dict:
    out = {"classwise": {}, "uniform": {}}
    cwd = os.getcwd()
    os.chdir(ref_dir)  # the reference loads "<dataset>_psiphi.npy" from the working directory
    try:
        for dataset in ["ade20k", "celeba", "coco"]:
            raw = np.load(f"{dataset}_psiphi.npy")
            k = int(raw.shape[0])
            full = make_diffusion(gd, respace, None, "discrete_zero_classwise", dataset)
            ddim = make_diffusion(gd, respace, "ddim25", "discrete_zero_classwise", dataset)
            forced = [i for i in range(k) if full.psiphi[i] != raw[i]]
            g_ddim = captured_gamma(ddim, list(range(25)), "discrete_zero_classwise", k)
            g_full = captured_gamma(full, FULL_T, "discrete_zero_classwise", k)
            out["classwise"][dataset] = {
                "num_classes": k,
                "kappa_raw": [float(v) for v in raw],  # exact (repr) float64
                "forced_index": forced,
                "forced_value": [float(full.psiphi[i]) for i in forced],
                "ddim25": {"respaced_index": list(range(25)), "t": [int(t) for t in ddim.timestep_map],
                           "gamma": [[r12(v) for v in row] for row in g_ddim]},
                "full1000": {"t": FULL_T, "gamma": [[r12(v) for v in row] for row in g_full]},
            }
        for name, spacing in [("ddim25", "ddim25"), ("25", "25"), ("1000", None)]:
            d = make_diffusion(gd, respace, spacing, "discrete_zero_uniform", "celeba")
            n = d.num_timesteps
            g = captured_gamma(d, list(range(n)), "discrete_zero_uniform", 4)
            assert np.all(g == g[:, :1]), "uniform gammas differ between classes"
            out["uniform"][name] = {"respaced_index": list(range(n)), "t": [int(t) for t in d.timestep_map],
                                    "gamma": [float(v) for v in g[:, 0]]}  # float32 values, exact
    finally:
        os.chdir(cwd)
    return {
        "description": "Label Diffusion keep probabilities as official q_sample(option='discrete_zero_*') "
                       "computes them; gamma[i][c] for timestep i and class c",
        **out,
    }


# ------------------------------------------------------------------------------------------------ main


def write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reference", type=Path, help="extracted checkout of github.com/mlvlab/SCDM")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ref = args.reference.resolve()
    gd, respace = import_reference(ref)
    write(args.out / "timesteps.json", timesteps_fixture(respace))
    write(args.out / "trajectories.json", trajectories_fixture(gd, respace))
    write(args.out / "label_gamma.json", label_gamma_fixture(gd, respace, ref))


if __name__ == "__main__":
    main()
