"""Robustness benchmark: corrupt labels, sample, score, report.

    from bench import BenchConfig, run
    run(BenchConfig(), "runs/bench")  # the default CPU run; see bench/config.py for every field
"""
from __future__ import annotations

from typing import Any

_API = {"BenchConfig": "config", "CorruptionSpec": "config", "DatasetSpec": "config", "ModelSpec": "config",
        "SamplingSettings": "config", "load_config": "config", "run": "run", "read_table": "report",
        "compare": "report", "plot_all": "plots"}


def __getattr__(name: str) -> Any:
    """Lazy API imports, so `python -m bench --threads N` can limit thread pools before torch loads."""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
