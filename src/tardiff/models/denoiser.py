"""Class-conditional 1-D U-Net denoiser for multivariate time series.

Public layout is ``(batch, time, features)``; the network works on ``(batch, channels, time)``
internally. The time embedding (sinusoidal + MLP) plus a label embedding conditions every residual
block through a GroupNorm scale-shift. Label ``n_classes`` is the null token used for
classifier-free guidance. Sequences are padded (edge values) to a multiple of ``2**(levels-1)`` and
cropped back, so any length works.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of integer timesteps ``(B,)``."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int) -> nn.GroupNorm:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the conditioning sets scale and shift of the second norm."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = _norm(in_ch)
        self.conv1 = nn.Conv1d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)
        self.norm2 = _norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv1d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.silu(self.norm1(h)))
        scale, shift = self.emb(F.silu(emb))[:, :, None].chunk(2, dim=1)
        out = self.norm2(out) * (1 + scale) + shift
        out = self.conv2(self.dropout(F.silu(out)))
        return self.skip(h) + out


class Denoiser(nn.Module):
    """1-D U-Net ``(x_t, t, y) -> eps or v``, all tensors ``(B, T, C)``.

    ``y`` holds class labels in ``0 .. n_classes-1``; the value ``n_classes`` means "no label".
    The output convolution is zero-initialised, so a fresh model predicts 0.
    """

    def __init__(
        self,
        n_features: int,
        seq_len: int,
        base_channels: int = 64,
        channel_mults: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 2,
        dropout: float = 0.0,
        n_classes: int = 2,
    ):
        super().__init__()
        self.config = {
            "n_features": n_features,
            "seq_len": seq_len,
            "base_channels": base_channels,
            "channel_mults": list(channel_mults),
            "num_res_blocks": num_res_blocks,
            "dropout": dropout,
            "n_classes": n_classes,
        }
        self.n_features, self.seq_len, self.n_classes = n_features, seq_len, n_classes
        self.multiple = 2 ** (len(channel_mults) - 1)
        emb_dim = 4 * base_channels
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.label_emb = nn.Embedding(n_classes + 1, emb_dim)

        self.inp = nn.Conv1d(n_features, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skip_chs, ch = [base_channels], base_channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(ch, base_channels * mult, emb_dim, dropout))
                ch = base_channels * mult
                skip_chs.append(ch)
            if level < len(channel_mults) - 1:
                self.down.append(nn.Conv1d(ch, ch, 3, stride=2, padding=1))
                skip_chs.append(ch)
        self.mid = nn.ModuleList(
            [ResBlock(ch, ch, emb_dim, dropout), ResBlock(ch, ch, emb_dim, dropout)]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                out_ch = base_channels * mult
                self.up.append(ResBlock(ch + skip_chs.pop(), out_ch, emb_dim, dropout))
                ch = out_ch
            if level > 0:
                conv = nn.Conv1d(ch, ch, 3, padding=1)
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2), conv))
        self.out = nn.Sequential(_norm(ch), nn.SiLU(), nn.Conv1d(ch, n_features, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Predict the target for noisy ``x`` (B, T, C) at timesteps ``t`` with labels ``y``."""
        length = x.shape[1]
        h = x.transpose(1, 2)
        pad = -length % self.multiple
        if pad:
            h = F.pad(h, (0, pad), mode="replicate")
        emb = self.time_mlp(timestep_embedding(t, self.base_channels)) + self.label_emb(y)

        h = self.inp(h)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        for block in self.mid:
            h = block(h, emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.out(h)[:, :, :length].transpose(1, 2)
