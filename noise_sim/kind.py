"""The record each corruption registers (function, natural parameters, severity map) and parameter checks."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from torch import Tensor

# A kind's function: (labels (B, H, W) int64, *, gens, instances, unlabeled, **params) -> (B, H, W) int64.
Apply = Callable[..., Tensor]


@dataclass(frozen=True)
class Kind:
    """One corruption: ``apply`` plus how ``severity`` in [0, 1] maps onto its natural parameters."""

    name: str
    apply: Apply
    defaults: Mapping[str, Any]  # natural parameters used when neither params nor a severity is given
    from_severity: Callable[[float], dict[str, Any]]  # documented, monotone in severity; 0 -> identity
    options: Mapping[str, Any] = field(default_factory=dict)  # settings severity leaves alone
    summary: str = ""  # one line: the annotation error it models
    severity_rule: str = ""  # one line: the severity -> parameter formula, for docs and --help

    def resolve(self, severity: float | None, params: Mapping[str, Any]) -> dict[str, Any]:
        """Full parameter dict from either a severity or natural parameters (plus options)."""
        known = set(self.defaults) | set(self.options)
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"kind {self.name!r} has no parameter(s) {unknown}; "
                f"natural parameters: {sorted(self.defaults)}, options: {sorted(self.options)}"
            )
        natural = {k: v for k, v in params.items() if k in self.defaults}
        if severity is not None and natural:
            raise ValueError(
                f"give either severity or natural parameters for {self.name!r}, not both "
                f"(got severity={severity} and {sorted(natural)})"
            )
        base = dict(self.defaults) if severity is None else self.from_severity(severity)
        return {**self.options, **base, **params}


def round_half_up(x: float) -> int:
    """Nearest integer, halves rounded up (unlike Python's round-half-even)."""
    return int(math.floor(x + 0.5))


def is_real(value: Any) -> bool:
    """A real number (Python or numpy scalar), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int) -> int:
    """An integer >= low (integral floats accepted), else ValueError."""
    if not is_real(value) or not math.isfinite(value) or value != int(value) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def check_float(name: str, value: Any, low: float, high: float = math.inf) -> float:
    """A real number in [low, high], else ValueError."""
    if not is_real(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def check_choice(name: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """One of ``choices``, else ValueError."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value
