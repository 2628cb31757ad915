"""`Pipeline`: a model with its card, turning raw label maps into images; `load_pipeline` finds checkpoints."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .checkpoint import check_state_dict, read_card, read_weights
from .config import LabelSchedule, ModelCard, Precision, Sampler
from .gaussian import Diffusion
from .guidance import ConditionalDenoiser
from .label_diffusion import LabelDiffusion
from .labels import as_label_tensor, encode
from .precision import autocast_dtype
from .samplers import X0Processing, sample
from .unet import UNet

BUNDLED_DIR = Path(__file__).parent / "weights"
BUNDLED = ("embedded-scdm", "embedded-sdm")


@dataclass(frozen=True)
class StepInfo:
    """What the sampler callback receives at every evaluated step (previews)."""

    step: int  # 0-based index of this evaluation
    num_steps: int
    t: int  # original 1000-step timestep
    x_t: torch.Tensor  # (N, 3, H, W) current sample
    x0: torch.Tensor  # (N, 3, H, W) processed x̂_0
    y_t: torch.Tensor | None  # (N, C, H, W) diffused label fed to the conditional branch


def image_seed(seed: int, index: int) -> int:
    """Seed of image `index` of a call with `seed`: independent streams, independent of batching."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class Pipeline:
    """An SDM/SCDM model with everything needed to sample it."""

    def __init__(self, model: UNet, card: ModelCard, device: str | torch.device = "cpu"):
        self.model = model.to(device).eval()
        self.card = card
        self.device = torch.device(device)
        self.label_diffusion = LabelDiffusion(card.label_diffusion, card.labels.num_classes,
                                              card.diffusion.num_timesteps)

    @property
    def is_scdm(self) -> bool:
        return self.card.label_diffusion.schedule != LabelSchedule.NONE

    def encode(self, labels, edges=None) -> torch.Tensor:
        """Raw ids (B, H, W) -> condition (B, C, H, W) on the model's device."""
        return encode(labels, self.card.labels, edges=edges, device=self.device)

    def diffuse_labels(self, labels, t: int | torch.Tensor, *, generator: torch.Generator | None = None,
                       edges=None) -> torch.Tensor:
        """y_t ~ q(y_t | y_0) for integer labels (B, H, W) at original timestep t (SPEC §4)."""
        y0 = self.encode(labels, edges)
        t = torch.as_tensor(t, device=self.device).long().reshape(-1).expand(y0.shape[0])
        if ((t < 0) | (t > self.card.diffusion.num_timesteps)).any():
            raise ValueError(f"t must be in [0, {self.card.diffusion.num_timesteps}], got {t.tolist()}")
        return self.label_diffusion.q_sample(y0, t, generator=generator)

    @torch.no_grad()
    def generate(self, labels, *, num_samples: int = 1, steps: int | None = None, sampler: str | Sampler | None = None,
                 guidance: float | None = None, seed: int | Sequence[int] = 0, label_diffusion: bool = True,
                 extrapolation: float | None = None, dynamic_threshold: float | None = None,
                 callback: Callable[[StepInfo], None] | None = None, edges=None, eta: float | None = None,
                 inpaint_image=None, inpaint_mask=None, batch_size: int | None = None,
                 precision: str | Precision | None = None) -> np.ndarray:
        """Images (B * num_samples, H, W, 3) uint8 for raw-id labels (B, H, W); image k = label k // num_samples.

        `None` settings take the checkpoint's defaults (official checkpoints: the reference 25-step ancestral
        mode with guidance 1.5, extrapolation 0.8 and dynamic thresholding 0.95; the embedded models: DDIM with 15
        steps and eta 1; DDIM and DPM-Solver++ never extrapolate unless asked). `precision` ("fp32", "bf16",
        "auto": bf16 where the device computes it natively) defaults to the card's (fp32 for official
        checkpoints), as does DDIM's `eta`. `seed` is one int (image k gets `image_seed(seed, k)`) or one seed
        per image.
        Semantic editing (SDM Eq. 12): pixels where `inpaint_mask` is 1 are regenerated, the rest of
        `inpaint_image` ((B, H, W, 3) uint8) is re-noised from the forward process at every step.
        """
        d = self.card.sampler
        try:
            kind = Sampler(d.sampler if sampler is None else sampler).value
        except ValueError:
            raise ValueError(f"unknown sampler {sampler!r}; use one of {[s.value for s in Sampler]}") from None
        steps = d.steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
            raise ValueError(f"steps must be a whole number, got {steps!r}")
        guidance = d.guidance if guidance is None else float(guidance)
        extrapolation = (d.extrapolation if kind == "ancestral" else 0.0) if extrapolation is None else float(extrapolation)
        dynamic_threshold = d.dynamic_threshold if dynamic_threshold is None else float(dynamic_threshold)
        eta = d.eta if eta is None else float(eta)
        autocast = autocast_dtype(d.precision if precision is None else precision, self.device)
        if not np.isfinite(guidance) or guidance < 0:
            raise ValueError(f"guidance must be a finite number >= 0, got {guidance}")
        if not (np.isfinite(eta) and 0 <= eta <= 1):
            raise ValueError(f"eta must be in [0, 1], got {eta}")
        if not 0 <= dynamic_threshold < 1:
            raise ValueError(f"dynamic_threshold is a quantile in [0, 1), got {dynamic_threshold}")
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")

        labels = as_label_tensor(labels)
        y = self.encode(labels, edges).repeat_interleave(num_samples, dim=0)  # (N, C, H, W)
        n = y.shape[0]
        seeds = [image_seed(seed, k) for k in range(n)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} images")
        known, mask = self._inpaint_inputs(inpaint_image, inpaint_mask, labels.shape, num_samples)
        diffusion = Diffusion.from_config(self.card.diffusion, steps)
        chunk = batch_size or n
        out = []
        for s in range(0, n, chunk):
            sl = slice(s, min(n, s + chunk))
            out.append(self._sample_chunk(
                y[sl], seeds[sl], diffusion, kind, guidance, label_diffusion, X0Processing(extrapolation, dynamic_threshold),
                eta, callback, None if known is None else (known[sl], mask[sl]), autocast))
        return np.concatenate(out)

    def _inpaint_inputs(self, image, mask, shape, num_samples):
        if image is None and mask is None:
            return None, None
        if image is None or mask is None:
            raise ValueError("semantic editing needs both inpaint_image and inpaint_mask")
        image = torch.as_tensor(np.asarray(image))
        mask = torch.as_tensor(np.asarray(mask))
        if image.ndim == 3:
            image = image[None]
        if mask.ndim == 2:
            mask = mask[None]
        b, h, w = shape
        if tuple(image.shape) != (b, h, w, 3) or tuple(mask.shape) != (b, h, w):
            raise ValueError(f"inpaint_image must be (B, H, W, 3) and inpaint_mask (B, H, W) matching labels "
                             f"{(b, h, w)}; got {tuple(image.shape)} and {tuple(mask.shape)}")
        x = image.float().permute(0, 3, 1, 2) / 127.5 - 1
        m = (mask > 0).float()[:, None]
        return (x.repeat_interleave(num_samples, 0).to(self.device), m.repeat_interleave(num_samples, 0).to(self.device))

    def _sample_chunk(self, y, seeds, diffusion, kind, guidance, use_ld, x0p, eta, callback, inpaint, autocast_dtype):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        h, w = y.shape[-2:]
        noise = lambda: torch.cat([torch.randn((1, 3, h, w), generator=g) for g in gens]).to(self.device)  # noqa: E731
        x = noise()
        last_y: list[torch.Tensor] = []
        denoiser = ConditionalDenoiser(
            self.model, y, self.label_diffusion if use_ld else None, gens, guidance,
            num_classes=self.card.labels.num_classes, autocast_dtype=autocast_dtype,
            on_labels=(lambda y_t: last_y.append(y_t)) if callback is not None else None)
        blend = None
        if inpaint is not None:
            known, m = inpaint

            def blend(x_next: torch.Tensor, i: int) -> torch.Tensor:
                if i < 0:
                    return m * x_next + (1 - m) * known
                ii = torch.full((x_next.shape[0],), i, dtype=torch.long, device=x_next.device)
                return m * x_next + (1 - m) * diffusion.q_sample(known, ii, noise())

            x = blend(x, diffusion.num_steps - 1)
        cb = None
        if callback is not None:
            def cb(step, num_steps, x_t, x0):
                t = int(diffusion.timesteps[num_steps - 1 - step])
                callback(StepInfo(step, num_steps, t, x_t, x0, last_y[-1] if last_y else None))
                last_y.clear()
        x0 = sample(kind, denoiser, diffusion, x, noise, x0_processing=x0p, eta=eta, callback=cb, blend=blend)
        return to_uint8(x0)


def load_pipeline(source: str | Path, *, device: str | torch.device | None = None) -> Pipeline:
    """A checkpoint directory or a bundled name ("embedded-scdm", "embedded-sdm") -> Pipeline."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    path = Path(source)
    hint = ""
    if str(source) in BUNDLED:
        path = BUNDLED_DIR / str(source)
        hint = f"Re-create it with `python -m scdm train --preset {source}` or restore it from git."
    elif not path.exists():
        raise ValueError(f"unknown model {str(source)!r}: not a checkpoint directory and not a bundled name; "
                         f"bundled models are {list(BUNDLED)}")
    card = read_card(path)
    model = UNet(card.unet)
    state = read_weights(path, hint)
    check_state_dict(model.state_dict(), state, f"weights in {path}", hint)
    model.load_state_dict(state)
    return Pipeline(model, card, device)
