"""The kind registry and ``corrupt``, the one entry point: input checks, seeding, identity at severity 0."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from . import colour, geometric, mixture, painting, paper, regions, rng
from .kind import Kind, is_real

if TYPE_CHECKING:
    from scdm.labels import ClassTable

REGISTRY: dict[str, Kind] = {
    k.name: k
    for k in (
        paper.DS, paper.EDGE, paper.RANDOM,
        geometric.SHAKY, painting.OVERPAINT, painting.UNDERPAINT, geometric.POLYGON,
        regions.CONFUSION, regions.MISSING, painting.SCRIBBLE, mixture.MIXTURE,
        regions.PARTIAL, painting.BLOBS, geometric.WARP, colour.COLOUR,
    )
}
KINDS: tuple[str, ...] = tuple(REGISTRY)
PAPER_KINDS: tuple[str, ...] = ("ds", "edge", "random")
MAX_ID = 2**16  # ids index dense per-map tables; 16 bits covers every PNG label format


def get_kind(kind: str) -> Kind:
    """The registered ``Kind`` called ``kind``, else a ValueError listing the names."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown kind {kind!r}; choose one of {list(KINDS)}")
    return REGISTRY[kind]


def resolve_params(kind: str, severity: float | None = None, **params: Any) -> dict[str, Any]:
    """The full parameter dict ``corrupt`` would use for this kind and severity or parameters."""
    return get_kind(kind).resolve(None if severity is None else _check_severity(severity), params)


def encoding_options(kind: str, table: ClassTable) -> dict[str, Any]:
    """The options ``kind`` needs so that it writes only ids of ``table``'s encoding: ``colour`` colour-codes and
    decodes with that encoding's palette (its default is ADE20K's); the other kinds need none."""
    get_kind(kind)
    return {"dataset": colour.palette_dataset(table)} if kind == colour.COLOUR.name else {}


def corrupt(
    labels: Tensor,
    kind: str,
    *,
    severity: float | None = None,
    generator: torch.Generator | None = None,
    instances: Tensor | None = None,
    unlabeled: int = 0,
    **params: Any,
) -> Tensor:
    """Corrupt (B, H, W) or (H, W) integer label maps with ``kind``; returns a new tensor like ``labels``.

    Give either ``severity`` in [0, 1] or the kind's natural parameters (neither: the kind's defaults, the
    paper's settings for ds/edge/random). Exactly one seed per map is drawn from ``generator`` (map 0
    first) and map i is corrupted with its own CPU stream, so a batch equals one-by-one calls and CPU
    and GPU agree. Severity 0 returns an exact copy.
    """
    spec = get_kind(kind)
    if severity is not None:
        severity = _check_severity(severity)
    resolved = spec.resolve(severity, params)
    maps = _check_labels(labels)
    inst = _check_instances(instances, labels)
    _check_unlabeled(unlabeled, labels.dtype)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}; "
                         "use torch.Generator().manual_seed(seed)")
    gens = rng.map_generators(generator, maps.shape[0])  # drawn even at severity 0: one seed per map
    if severity == 0 or labels.numel() == 0:
        return labels.clone()
    out = spec.apply(maps, gens=gens, instances=inst, unlabeled=unlabeled, **resolved)
    if labels.dtype != torch.int64 and int(out.max()) > torch.iinfo(labels.dtype).max:
        raise ValueError(f"kind {kind!r} produced ids above the range of {labels.dtype}; pass wider labels")
    return out.to(labels.dtype).reshape(labels.shape)


def changed_fraction(clean: Tensor, noisy: Tensor) -> Tensor:
    """Fraction of pixels that differ, per map: (B,) float64 for (B, H, W) input, a 0-d tensor for (H, W)."""
    if clean.shape != noisy.shape:
        raise ValueError(f"shapes differ: {tuple(clean.shape)} vs {tuple(noisy.shape)}")
    return (clean != noisy).flatten(-2).double().mean(-1)


def _check_severity(severity: Any) -> float:
    """A float in [0, 1], else ValueError."""
    if not is_real(severity) or math.isnan(severity):
        raise ValueError(f"severity must be a number in [0, 1], got {severity!r}")
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    return float(severity)


def _check_integer_tensor(name: str, x: Any) -> None:
    """A torch integer tensor, else ValueError."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of integer ids, got {type(x).__name__}")
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise ValueError(f"{name} must hold integer ids, got dtype {x.dtype}; convert with .long()")


def _check_labels(labels: Any) -> Tensor:
    """Validated labels as a (B, H, W) int64 view or copy (the caller's tensor is never written)."""
    _check_integer_tensor("labels", labels)
    if labels.dim() not in (2, 3):
        raise ValueError(f"labels must be (B, H, W) or (H, W), got shape {tuple(labels.shape)}")
    if labels.numel():
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise ValueError(f"labels must be non-negative raw dataset ids, found {low}")
        if high >= MAX_ID:
            raise ValueError(f"label ids must be below {MAX_ID} (16 bit), found {high}; remap the ids first")
    maps = labels.long()
    return maps if maps.dim() == 3 else maps.unsqueeze(0)


def _check_instances(instances: Any, labels: Tensor) -> Tensor | None:
    """Validated instance ids as (B, H, W) int64 on the labels' device, or None."""
    if instances is None:
        return None
    _check_integer_tensor("instances", instances)
    if instances.shape != labels.shape:
        raise ValueError(
            f"instances has shape {tuple(instances.shape)} but labels has {tuple(labels.shape)}; they must match"
        )
    if instances.numel() and not 0 <= int(instances.min()) <= int(instances.max()) < 2**31:
        raise ValueError(f"instance ids must lie in [0, 2**31), found {int(instances.min())}..{int(instances.max())}")
    inst = instances.to(labels.device).long()
    return inst if inst.dim() == 3 else inst.unsqueeze(0)


def _check_unlabeled(unlabeled: Any, dtype: torch.dtype) -> None:
    """A non-negative int that the labels' dtype can hold, else ValueError."""
    if isinstance(unlabeled, bool) or not isinstance(unlabeled, int) or unlabeled < 0:
        raise ValueError(f"unlabeled must be a non-negative int id, got {unlabeled!r}")
    if dtype != torch.int64 and unlabeled > torch.iinfo(dtype).max:
        raise ValueError(f"unlabeled={unlabeled} does not fit labels of dtype {dtype}")
