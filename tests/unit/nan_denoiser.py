"""A denoiser wrapper that starts returning NaN, for the non-finite checks of the samplers."""

from __future__ import annotations

import torch


class NaNAfter(torch.nn.Module):
    """``inner`` (a denoiser with ``n_classes``) whose output is NaN after ``k`` calls."""

    def __init__(self, inner: torch.nn.Module, k: int):
        super().__init__()
        self.inner, self.k, self.calls, self.n_classes = inner, k, 0, inner.n_classes

    def forward(self, x, t, y):
        self.calls += 1
        return self.inner(x, t, y) * (float("nan") if self.calls > self.k else 1.0)
