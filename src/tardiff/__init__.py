"""tardiff: influence-guided diffusion for synthetic ICU time series (TarDiff, MedDiff ideas)."""

__version__ = "0.1.0"
