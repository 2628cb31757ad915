"""Robustness benchmark: corrupt labels, sample, score, report."""
