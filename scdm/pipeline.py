"""`Pipeline`: a model with its card, turning raw label maps into images; `load_pipeline` finds checkpoints."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .checkpoint import check_state_dict, read_card, read_weights
from .config import LabelSchedule, ModelCard, Precision, Sampler, Spacing
from .gaussian import Diffusion
from .guidance import ConditionalDenoiser
from .label_diffusion import LabelDiffusion
from .labels import as_label_tensor, encode
from .precision import autocast_dtype
from .samplers import StepInfo, X0Processing, sample
from .seeds import image_seed
from .serialize import to_json_value
from .settings import SamplingSettings, resolve
from .unet import UNet

BUNDLED_DIR = Path(__file__).parent / "weights"
BUNDLED = ("embedded-scdm", "embedded-sdm", "embedded-scdm-uniform")


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
        self._digest: str | None = None

    @property
    def is_scdm(self) -> bool:
        return self.card.label_diffusion.schedule != LabelSchedule.NONE

    def encode(self, labels, edges=None) -> torch.Tensor:
        """Raw ids (B, H, W) -> condition (B, C, H, W) on the model's device."""
        return encode(labels, self.card.labels, edges=edges, device=self.device)

    def diffuse_labels(self, labels, t: int | torch.Tensor, *, generator: torch.Generator | None = None,
                       edges=None) -> torch.Tensor:
        """y_t ~ q(y_t | y_0) for integer labels (B, H, W) at original timestep t (docs/method.md §4)."""
        y0 = self.encode(labels, edges)
        t = torch.as_tensor(t, device=self.device).long().reshape(-1).expand(y0.shape[0])
        if ((t < 0) | (t > self.card.diffusion.num_timesteps)).any():
            raise ValueError(f"t must be in [0, {self.card.diffusion.num_timesteps}], got {t.tolist()}")
        return self.label_diffusion.q_sample(y0, t, generator=generator)

    def resolve(self, settings: SamplingSettings | None = None, **overrides) -> SamplingSettings:
        """The fully specified sampling settings `generate` would use (`None` = this card's defaults)."""
        settings = settings or SamplingSettings()
        if overrides:
            settings = dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
        return resolve(self.card, settings, self.device)

    @property
    def digest(self) -> str:
        """sha256 (16 hex digits) of the weights and the card: which model made a result."""
        if self._digest is None:
            # the card's fields without config.json's format key, so a format bump keeps every digest
            h = hashlib.sha256(json.dumps(to_json_value(self.card), indent=1).encode())
            for name, tensor in sorted(self.model.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._digest = h.hexdigest()[:16]
        return self._digest

    @torch.no_grad()
    def generate(self, labels, *, num_samples: int = 1, settings: SamplingSettings | None = None,
                 steps: int | None = None, sampler: str | Sampler | None = None,
                 guidance: float | None = None, seed: int | Sequence[int] = 0, label_diffusion: bool | None = None,
                 extrapolation: float | None = None, dynamic_threshold: float | None = None,
                 callback: Callable[[StepInfo], None] | None = None, edges=None, eta: float | None = None,
                 inpaint_image=None, inpaint_mask=None, batch_size: int | None = None,
                 precision: str | Precision | None = None, spacing: str | Spacing | None = None) -> np.ndarray:
        """Images (B * num_samples, H, W, 3) uint8 for raw-id labels (B, H, W); image k = label k // num_samples.

        Sampling settings come from `settings` and the keyword overrides; every one left `None` is the
        checkpoint's default (`Pipeline.resolve` shows the result). Official checkpoints default to the
        reference 25-step mode (ancestral on the `ddim25` timesteps, guidance 1.5, extrapolation 0.8, dynamic
        thresholding 0.95, fp16 on GPUs); `steps=1000` is the reference 1000-step mode. The embedded models
        default to DDIM with eta 1, 20 `quad` steps and guidance 1.75. `seed` is one int (image k gets
        `image_seed(seed, k)`) or one seed per image.
        Semantic editing (SDM Eq. 12): pixels where `inpaint_mask` is 1 are regenerated, the rest of
        `inpaint_image` ((B, H, W, 3) uint8) is re-noised from the forward process at every step.
        """
        r = self.resolve(settings, sampler=sampler, steps=steps, spacing=spacing, guidance=guidance,
                         extrapolation=extrapolation, dynamic_threshold=dynamic_threshold, eta=eta,
                         precision=precision, label_diffusion=label_diffusion)
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples must be a whole number >= 1, got {num_samples!r}")

        labels = as_label_tensor(labels)
        y = self.encode(labels, edges).repeat_interleave(num_samples, dim=0)  # (N, C, H, W)
        n = y.shape[0]
        seeds = [image_seed(seed, k) for k in range(n)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
        if len(seeds) != n:
            raise ValueError(f"got {len(seeds)} seeds for {n} images")
        known, mask = self._inpaint_inputs(inpaint_image, inpaint_mask, labels.shape, num_samples)
        diffusion = Diffusion.from_config(self.card.diffusion, r.steps, r.spacing)
        chunk = batch_size or n
        out = []
        for s in range(0, n, chunk):
            sl = slice(s, min(n, s + chunk))
            out.append(self._sample_chunk(y[sl], seeds[sl], diffusion, r, callback,
                                          None if known is None else (known[sl], mask[sl])))
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

    def _sample_chunk(self, y, seeds, diffusion, r: SamplingSettings, callback, inpaint):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        h, w = y.shape[-2:]
        noise = lambda: torch.cat([torch.randn((1, 3, h, w), generator=g) for g in gens]).to(self.device)  # noqa: E731
        x = noise()
        ld = self.label_diffusion.respaced(diffusion.timesteps) if r.label_diffusion else None
        denoiser = ConditionalDenoiser(
            self.model, y, ld, gens, r.guidance,
            num_classes=self.card.labels.num_classes, autocast_dtype=autocast_dtype(r.precision, self.device))
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
            def cb(info: StepInfo) -> None:  # the sampler's step, with the y_t this step's denoiser drew
                callback(dataclasses.replace(info, y_t=denoiser.labels.last))
        x0p = X0Processing(r.extrapolation, r.dynamic_threshold)
        x0 = sample(r.sampler, denoiser, diffusion, x, noise, x0_processing=x0p, eta=r.eta, callback=cb, blend=blend)
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
