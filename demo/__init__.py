"""The SCDM demo: a Gradio app to paint or upload label maps and compare SCDM and SDM side by side.

    python -m demo                          # the bundled embedded-scdm and embedded-sdm models
    python -m demo --checkpoint DIR         # one project checkpoint directory
    python -m demo --scdm DIR --sdm DIR     # any SCDM/SDM pair that shares a label encoding
"""
from .app import build_app, launch

__all__ = ["build_app", "launch"]
