"""SCDM: robust semantic image synthesis with Stochastic Conditional Diffusion Models (ICML 2024) on SDM."""
