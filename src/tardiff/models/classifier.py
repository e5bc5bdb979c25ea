"""Binary sequence classifiers used for guidance and as downstream models.

Both take ``x`` of shape (batch, time, features) and return one logit per sample (batch,).

- ``gru``: stacked GRU (PyTorch's gate equations, dropout between layers); readout = concat of
  the last hidden state and the time-mean of the top layer's outputs -> MLP -> logit.
- ``tcn``: ``layers`` residual blocks of two dilated causal convolutions (kernel 3, dilation
  2^i, receptive field 1 + 4 (2^layers - 1) steps); readout = concat of the time-mean and the
  last step -> MLP -> logit. GELU activations keep the input gradients smooth for guidance.

The GRU keeps one parameter set, an ``nn.GRU`` (``rnn.weight_ih_l{k}`` (3H, in),
``rnn.weight_hh_l{k}``, ``rnn.bias_ih_l{k}``, ``rnn.bias_hh_l{k}``, gates r, z, n), and runs it
in one of two ways:

- *fused* (default): ``nn.GRU``'s functional form ``torch.gru`` — the C++ recurrence on CPU,
  cuDNN on GPU. Used for training, prediction and every first-order gradient
  (finite-difference and classifier guidance). cuDNN refuses to backpropagate through its
  inference kernel, so the op runs in its training form whenever autograd is enabled, with the
  between-layer dropout only in training mode (so eval mode stays deterministic). It supports
  neither ``torch.func.vmap`` nor, under cuDNN, double backward;
- *unrolled*: the same equations written as a Python loop of plain tensor ops on the same
  parameters, which every ``torch.func`` transform (vmap, jvp, grad) and double backward
  support on any device. Selected explicitly with the :func:`unrolled_rnn` context manager, as
  ``per_sample_grads`` (vmap), ``sample_influence`` and ``jvp_term`` (forward-mode AD) and
  the ``double_backprop`` reference do.

Both paths give the same outputs and input gradients up to float rounding (tested to 1e-5).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

_GRU_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # nn.GRU's per-layer order
_UNROLLED = contextvars.ContextVar("tardiff_unrolled_rnn", default=False)


@contextlib.contextmanager
def unrolled_rnn(enabled: bool = True) -> Iterator[None]:
    """Within the block, GRU classifiers run the unrolled plain-op recurrence (see the module
    docstring); needed under ``torch.func`` transforms and for double backward."""
    token = _UNROLLED.set(enabled)
    try:
        yield
    finally:
        _UNROLLED.reset(token)


def rnn_path() -> str:
    """``"unrolled"`` inside :func:`unrolled_rnn`, else ``"fused"``."""
    return "unrolled" if _UNROLLED.get() else "fused"


def gru_layer_unrolled(
    x: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> torch.Tensor:
    """One GRU layer over (B, T, in) -> (B, T, H) from matmuls and pointwise ops, h0 = 0."""
    gi = F.linear(x, weight_ih, bias_ih)  # (B, T, 3H), all steps at once
    hidden = weight_hh.shape[1]
    h = gi.new_zeros(gi.shape[0], hidden)
    outputs = []
    for gi_t in gi.unbind(1):  # views whose backward is O(1), not a full-length scatter
        gh = F.linear(h, weight_hh, bias_hh)
        i_r, i_z, i_n = gi_t.chunk(3, dim=-1)
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
        # nn.GRU warns about dropout with a single layer (there is nothing between layers)
        self.rnn = nn.GRU(n_features, hidden, layers, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)  # between layers, unrolled path
        self.head = _head(2 * hidden, hidden, dropout)

    def layer_weights(self, k: int) -> list[torch.Tensor]:
        """weight_ih, weight_hh, bias_ih, bias_hh of layer k (as swapped in by functional_call)."""
        return [getattr(self.rnn, f"{w}_l{k}") for w in _GRU_WEIGHTS]

    def recurrence(self, x: torch.Tensor) -> torch.Tensor:
        """Top-layer outputs, time-major (T, B, H), of a batch-first x (B, T, in) by the path
        :func:`rnn_path` selects."""
        layers = self.rnn.num_layers
        if not _UNROLLED.get():
            # time-major: the C++ recurrence projects a contiguous (T, B, in) input with one
            # matmul (a batch-first one is transposed inside and takes a slow batched matmul)
            weights = [w for k in range(layers) for w in self.layer_weights(k)]
            h0 = x.new_zeros(layers, x.shape[0], self.rnn.hidden_size)
            train = self.training or torch.is_grad_enabled()  # see the module docstring
            p = self.rnn.dropout if self.training else 0.0
            xt = x.transpose(0, 1).contiguous()
            return torch.gru(xt, h0, weights, True, layers, p, train, False, False)[0]
        for k in range(layers):
            x = gru_layer_unrolled(self.dropout(x) if k > 0 else x, *self.layer_weights(k))
        return x.transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.recurrence(x)
        return self.head(torch.cat([h[-1], h.mean(dim=0)], dim=-1)).squeeze(-1)


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


#: classifier.arch -> class (the schema lists the same names; a test checks they agree)
ARCHS: dict[str, type[nn.Module]] = {"gru": GRUClassifier, "tcn": TCNClassifier}


def build_classifier(
    arch: str, n_features: int, hidden: int, layers: int, dropout: float
) -> nn.Module:
    """A ``gru`` or ``tcn`` classifier mapping (B, T, n_features) to (B,) logits."""
    return ARCHS[arch](n_features, hidden, layers, dropout)
