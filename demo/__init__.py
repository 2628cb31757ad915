"""The SCDM demo: a Gradio app to paint or upload label maps and compare SCDM and SDM side by side.

    python -m demo                          # the bundled embedded-scdm and embedded-sdm models
    python -m demo --checkpoint DIR         # one project checkpoint directory
    python -m demo --scdm DIR --sdm DIR     # any SCDM/SDM pair that shares a label encoding

`build_app` and `launch` are imported lazily, so the label tools do not pull in Gradio.
"""
from __future__ import annotations

from typing import Any

__all__ = ["build_app", "launch"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'demo' has no attribute {name!r}")
