"""Reproducible label-map noise: the SCDM paper's DS / Edge / Random corruptions and human-error simulations.

    >>> import torch, noise_sim
    >>> noisy = noise_sim.corrupt(labels, "edge", severity=0.5, generator=torch.Generator().manual_seed(0))

``KINDS`` lists the registered names; ``resolve_params`` shows what a severity means for a kind.
"""

from .registry import (KINDS, PAPER_KINDS, REGISTRY, changed_fraction, corrupt, encoding_options, get_kind,
                       resolve_params)

__version__ = "0.1.0"

__all__ = [
    "KINDS", "PAPER_KINDS", "REGISTRY", "changed_fraction", "corrupt", "encoding_options", "get_kind",
    "resolve_params",
    "__version__",
]
