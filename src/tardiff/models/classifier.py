"""Binary sequence classifiers used for guidance and as downstream models.

Both take ``x`` of shape (batch, time, features) and return one logit per sample (batch,).
They are built from plain tensor ops (no cuDNN RNN kernels) so that ``torch.func.vmap``,
double backprop and forward-mode AD all work on CPU and GPU alike; ``nn.GRU`` supports none of
vmap (per-sample gradients) or, under cuDNN, double backward.

- ``gru``: stacked GRU (PyTorch's gate equations, dropout between layers); readout = concat of
  the last hidden state and the time-mean of the top layer's outputs -> MLP -> logit.
- ``tcn``: ``layers`` residual blocks of two dilated causal convolutions (kernel 3, dilation
  2^i, receptive field 1 + 4 (2^layers - 1) steps); readout = concat of the time-mean and the
  last step -> MLP -> logit. GELU activations keep the input gradients smooth for guidance.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

ARCHS = ("gru", "tcn")


class GRULayer(nn.Module):
    """One unidirectional GRU layer over (B, T, in) built from matmuls (vmap/jvp friendly)."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.weight_ih = nn.Parameter(torch.empty(3 * hidden, n_in))
        self.weight_hh = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.bias_ih = nn.Parameter(torch.empty(3 * hidden))
        self.bias_hh = nn.Parameter(torch.empty(3 * hidden))
        bound = 1.0 / math.sqrt(hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gi = F.linear(x, self.weight_ih, self.bias_ih)  # (B, T, 3H), all steps at once
        h = torch.zeros_like(gi[:, 0, : self.hidden])
        outputs = []
        for t in range(x.shape[1]):
            gh = F.linear(h, self.weight_hh, self.bias_hh)
            i_r, i_z, i_n = gi[:, t].chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
            outputs.append(h)
        return torch.stack(outputs, dim=1)


def _head(n_in: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
    )


class GRUClassifier(nn.Module):
    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        sizes = [n_features] + [hidden] * layers
        self.rnn = nn.ModuleList(GRULayer(a, hidden) for a in sizes[:-1])
        self.dropout = nn.Dropout(dropout)
        self.head = _head(2 * hidden, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.rnn):
            x = layer(self.dropout(x) if i > 0 else x)
        return self.head(torch.cat([x[:, -1], x.mean(dim=1)], dim=-1)).squeeze(-1)


class CausalConv(nn.Conv1d):
    """Conv1d on (B, C, T) that pads on the left only, so step t sees steps <= t."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.kernel_size[0] - 1) * self.dilation[0]
        return super().forward(F.pad(x, (pad, 0)))


class TCNBlock(nn.Module):
    def __init__(self, channels: int, dilation: int, dropout: float):
        super().__init__()
        self.conv1 = CausalConv(channels, channels, 3, dilation=dilation)
        self.conv2 = CausalConv(channels, channels, 3, dilation=dilation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(F.gelu(self.conv1(x)))
        h = self.dropout(F.gelu(self.conv2(h)))
        return x + h


class TCNClassifier(nn.Module):
    def __init__(self, n_features: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        self.inp = nn.Conv1d(n_features, hidden, 1)
        self.blocks = nn.Sequential(*(TCNBlock(hidden, 2**i, dropout) for i in range(layers)))
        self.head = _head(2 * hidden, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.inp(x.transpose(1, 2)))  # (B, H, T)
        return self.head(torch.cat([h.mean(dim=2), h[:, :, -1]], dim=-1)).squeeze(-1)


def build_classifier(
    arch: str, n_features: int, hidden: int, layers: int, dropout: float
) -> nn.Module:
    """A ``gru`` or ``tcn`` classifier mapping (B, T, n_features) to (B,) logits."""
    classes = {"gru": GRUClassifier, "tcn": TCNClassifier}
    if arch not in classes:
        raise ValueError(f"config key 'classifier.arch' must be one of {ARCHS}, got {arch!r}")
    return classes[arch](n_features, hidden, layers, dropout)
