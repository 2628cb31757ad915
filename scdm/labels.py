"""Raw dataset ids -> label channels: validation, one-hot encoding and the instance-edge channel (SPEC §2, §7)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .config import LabelSpec

NULL = -1  # channel index of the all-zero [MASK] vector


def as_label_tensor(labels, name: str = "labels") -> torch.Tensor:
    """Integer tensor (B, H, W) from a tensor/array (B, H, W) or (H, W); a clear error otherwise."""
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
        labels = torch.from_numpy(labels.astype(np.int64))
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor or numpy array, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.dtype.is_complex:
        raise ValueError(f"{name} must hold integer class ids, got dtype {labels.dtype}")
    if labels.ndim == 2:
        labels = labels[None]
    if labels.ndim != 3:
        raise ValueError(f"{name} must have shape (B, H, W) or (H, W), got {tuple(labels.shape)}")
    return labels.long()


def lookup_table(spec: LabelSpec) -> torch.Tensor:
    """raw id -> channel index (NULL for the null vector, -2 for ids the dataset does not have)."""
    raw_ids = spec.raw_ids if spec.raw_ids is not None else tuple(range(spec.num_classes))
    if len(raw_ids) != spec.num_classes:
        raise ValueError(f"LabelSpec: {len(raw_ids)} raw_ids for {spec.num_classes} classes")
    size = max(list(raw_ids) + [spec.unlabeled_id or 0]) + 1
    table = torch.full((size,), -2, dtype=torch.long)
    table[torch.tensor(raw_ids, dtype=torch.long)] = torch.arange(spec.num_classes)
    if spec.unlabeled_id is not None and (spec.unlabeled_to_null or spec.unlabeled_id not in raw_ids):
        table[spec.unlabeled_id] = NULL
    return table


def raw_to_index(labels: torch.Tensor, spec: LabelSpec) -> torch.Tensor:
    """Map raw ids (B, H, W) to channel indices, NULL for the all-zero vector; unknown ids raise."""
    table = lookup_table(spec).to(labels.device)
    bad = (labels < 0) | (labels >= len(table))
    if not bad.any():
        idx = table[labels]
        bad = idx == -2
    if bad.any():
        found = sorted(set(labels[bad].unique().tolist()))[:10]
        known = [i for i in range(len(table)) if table[i] != -2]
        raise ValueError(f"label ids {found} are not classes of this model; valid raw ids are "
                         f"{known[:20]}{' ...' if len(known) > 20 else ''} (dataset encoding: {describe(spec)})")
    return idx


def describe(spec: LabelSpec) -> str:
    if spec.raw_ids is None:
        return f"identity ids 0..{spec.num_classes - 1}"
    return f"{spec.num_classes} classes, unlabeled id {spec.unlabeled_id}"


def one_hot(index: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) channel indices (NULL allowed) -> (B, K, H, W) float one-hot; NULL pixels are all-zero."""
    oh = F.one_hot(index.clamp(min=0), num_classes).permute(0, 3, 1, 2).float()
    return oh * (index >= 0)[:, None].float()


def instance_edges(instances: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, 1, H, W): 1 where a 4-neighbour has another id (both sides of each boundary)."""
    e = torch.zeros_like(instances, dtype=torch.bool)
    dx = instances[:, :, 1:] != instances[:, :, :-1]
    dy = instances[:, 1:, :] != instances[:, :-1, :]
    e[:, :, 1:] |= dx
    e[:, :, :-1] |= dx
    e[:, 1:, :] |= dy
    e[:, :-1, :] |= dy
    return e[:, None].float()


def encode(labels, spec: LabelSpec, *, edges=None, device=None) -> torch.Tensor:
    """Raw ids -> condition (B, K [+1], H, W); the edge channel comes from `edges` (instances) or the labels."""
    labels = as_label_tensor(labels)
    if device is not None:
        labels = labels.to(device)
    y = one_hot(raw_to_index(labels, spec), spec.num_classes)
    if spec.use_edges:
        inst = labels if edges is None else as_label_tensor(edges, "edges").to(labels.device)
        if inst.shape != labels.shape:
            raise ValueError(f"instance map shape {tuple(inst.shape)} differs from labels {tuple(labels.shape)}")
        y = torch.cat([y, instance_edges(inst)], dim=1)
    return y
