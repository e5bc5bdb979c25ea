"""K GRU classifiers of one architecture as one stacked recurrence (the batched path of
:mod:`tardiff.evaluate.downstream.ensemble`).

- :func:`stacked_gru`: training. Time-major, batch-last :class:`_StackedGRULayer` steps with a
  hand-written backward (``torch.vmap`` of the unrolled classifier is no faster than one model
  at a time on CPU; this is ~2.8x on one thread).
- :func:`stacked_gru_predict`: prediction without autograd on an input shared by every model.

Both take the models' stacked state dicts (``torch.func.stack_module_state`` of
:class:`tardiff.models.classifier.GRUClassifier`) and equal the module up to float rounding
(tests/unit/test_ensemble.py).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: the parameter names of one nn.GRU layer (suffix ``_l<k>``)
GRU_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

Params = dict[str, torch.Tensor]


class Workspace(dict):
    """Buffers reused from step to step (fresh large tensors cost page faults every step); what a
    forward saves in them is valid until the next forward."""

    def buffer(self, name: str, like: torch.Tensor, *shape: int) -> torch.Tensor:
        buf = self.get(name)
        if buf is None or buf.shape != shape:
            buf = self[name] = like.new_empty(shape)
        return buf


def _gate_derivatives(out, h_new, n, r, z, hn, u, v) -> None:
    """Into ``out`` (K, 5, H, B): d h_new / d (pre-activation) of r and z (a_r, a_z), of the
    hidden term hn = W_hn h + b_hn of gate n (a_hn) and of gate n (a_n), then z. ``u``, ``v``:
    scratch."""
    a_r, a_z, a_hn, a_n = (out[:, i] for i in range(4))
    torch.sub(1, z, out=u)
    torch.mul(torch.sub(h_new, n, out=v), u, out=a_z)  # (h - n) z (1 - z) = (h_new - n)(1 - z)
    torch.mul(u, n, out=v)
    torch.addcmul(u, v, n, value=-1, out=a_n)  # (1 - z)(1 - n^2)
    torch.mul(a_n, r, out=a_hn)
    torch.mul(a_hn, hn, out=v)
    torch.addcmul(v, v, r, value=-1, out=a_r)  # a_n hn r (1 - r)
    out[:, 4].copy_(z)


def _fused_weights(w_ih, w_hh, b_ih, b_hh) -> torch.Tensor:
    """(K, 4H, H + 1 + I) weights mapping [h; 1; x] to the pre-activations of r and z (input and
    hidden terms summed), hn (hidden term of gate n) and the input term of gate n."""
    k, h3, n_in = w_ih.shape
    h = h3 // 3
    w = w_ih.new_zeros(k, 4 * h, h + 1 + n_in)
    w[:, : 3 * h, :h], w[:, : 3 * h, h] = w_hh, b_hh
    w[:, : 2 * h, h] += b_ih[:, : 2 * h]
    w[:, 3 * h :, h] = b_ih[:, 2 * h :]
    w[:, : 2 * h, h + 1 :], w[:, 3 * h :, h + 1 :] = w_ih[:, : 2 * h], w_ih[:, 2 * h :]
    return w


class _StackedGRULayer(torch.autograd.Function):
    """One ``nn.GRU`` layer (h0 = 0) of K models at once, with a hand-written backward.

    Time-major and batch-last, so every per-step op is on contiguous blocks: x (T, K, I, B) ->
    outputs (T, K, H, B), or with ``readout`` the last and the time-mean output (K, H, B) each;
    weights the stacked ``nn.GRU`` tensors. A buffer holds [h_t; 1; x_t] per step, so one matmul
    with :func:`_fused_weights` gives a step's pre-activations and one its weight gradients. The
    forward keeps each step's gate derivatives (:func:`_gate_derivatives`), so a backward step is
    a few ops. tanh is computed as 2 sigmoid(2a) - 1 (torch's CPU tanh is several times slower).
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, ws: Workspace, readout: bool):
        steps, k, n_in, b = x.shape
        h = w_hh.shape[2]
        zs = ws.buffer("zs", x, steps + 1, k, h + 1 + n_in, b)
        zs[0, :, :h], zs[:, :, h], zs[:steps, :, h + 1 :] = 0, 1, x
        w = _fused_weights(w_ih, w_hh, b_ih, b_hh)
        coef = ws.buffer("coef", x, steps, k, 5, h, b)
        pre, rz = ws.buffer("pre", x, k, 4 * h, b), ws.buffer("rz", x, k, 2 * h, b)
        s, n, u, v = (ws.buffer(name, x, k, h, b) for name in "snuv")
        r, z, hn = rz[:, :h], rz[:, h:], pre[:, 2 * h : 3 * h]
        for t in range(steps):
            torch.bmm(w, zs[t], out=pre)
            torch.sigmoid(pre[:, : 2 * h], out=rz)
            torch.addcmul(pre[:, 3 * h :], r, hn, out=s).mul_(2).sigmoid_()
            torch.mul(s, 2, out=n).sub_(1)
            h_new = torch.lerp(n, zs[t, :, :h], z, out=zs[t + 1, :, :h])
            _gate_derivatives(coef[t], h_new, n, r, z, hn, u, v)
        ctx.ws, ctx.readout = ws, readout
        ctx.save_for_backward(w, zs, coef)
        out = zs[1:, :, :h]
        return (out[-1], out.mean(0)) if readout else out

    @staticmethod
    def backward(ctx, *grads):
        w, zs, coef = ctx.saved_tensors
        steps, k, _, h, b = coef.shape
        g = ctx.ws.buffer("g", zs, steps, k, 4 * h, b)  # pre-activation gradients, rows as w
        dh, dz = ctx.ws.buffer("dh", zs, k, h, b), ctx.ws.buffer("dz", zs, k, h, b)
        if ctx.readout:  # d out_t = d_mean / T, plus d_last at the last step
            carry, d_mean = grads[0].clone(), grads[1] / steps
        else:
            carry = torch.zeros_like(dh)
        w_hh = w[:, : 3 * h, :h].transpose(1, 2)
        dw = torch.zeros_like(w)
        for t in reversed(range(steps)):
            torch.add(carry, d_mean if ctx.readout else grads[0][t], out=dh)
            torch.mul(dh.unsqueeze(1), coef[t, :, :4], out=g[t].view(k, 4, h, b))
            torch.mul(dh, coef[t, :, 4], out=dz)
            carry = torch.baddbmm(dz, w_hh, g[t, :, : 3 * h])
            dw.baddbmm_(g[t], zs[t].transpose(1, 2))
        dx = torch.matmul(w[:, :, h + 1 :].transpose(1, 2), g) if ctx.needs_input_grad[0] else None
        d_ih = torch.cat([dw[:, : 2 * h, h:], dw[:, 3 * h :, h:]], 1)  # columns 1, x
        d_hh = dw[:, : 3 * h, : h + 1]  # columns h, 1
        return dx, d_ih[..., 1:], d_hh[..., :h], d_ih[..., 0], d_hh[..., h], None, None


def stacked_gru(params: Params, x: torch.Tensor, workspaces: list[Workspace]) -> torch.Tensor:
    """Logits (K, B) of K stacked GRU classifiers (their state dicts) on x (K, B, T, C)."""
    h = x.permute(2, 0, 3, 1)
    for layer, ws in enumerate(workspaces):
        weights = (params[f"rnn.{w}_l{layer}"] for w in GRU_WEIGHTS)
        h = _StackedGRULayer.apply(h, *weights, ws, layer == len(workspaces) - 1)
    feats = torch.cat(h, 1)  # (K, 2H, B): last and mean, as GRUClassifier.forward
    hid = F.gelu(torch.baddbmm(params["head.0.bias"].unsqueeze(2), params["head.0.weight"], feats))
    return torch.baddbmm(params["head.3.bias"].unsqueeze(2), params["head.3.weight"], hid)[:, 0]


@torch.no_grad()
def stacked_gru_predict(params: Params, x: torch.Tensor, layers: int) -> torch.Tensor:
    """Logits (K, B) of K stacked GRU classifiers on a shared x (B, T, C), without autograd:
    the recurrence as batched matmuls over the models, batch-last (several times faster than
    ``torch.vmap`` of the unrolled classifier on CPU; equal up to float rounding, tested)."""
    inputs = x.permute(1, 2, 0)  # (T, C, B), shared by every model
    for layer in range(layers):
        w_ih, w_hh, b_ih, b_hh = (params[f"rnn.{w}_l{layer}"] for w in GRU_WEIGHTS)
        k, h3, _ = w_ih.shape
        h = w_hh.shape[2]
        state = x.new_zeros(k, h, x.shape[0])
        total, outputs = torch.zeros_like(state), []
        for x_t in inputs:  # (C, B) shared, or (K, H_prev, B) per model
            gi = torch.matmul(w_ih, x_t).add_(b_ih.unsqueeze(2))
            gh = torch.bmm(w_hh, state).add_(b_hh.unsqueeze(2))
            rz = (gi[:, : 2 * h] + gh[:, : 2 * h]).sigmoid_()
            n = torch.addcmul(gi[:, 2 * h :], rz[:, :h], gh[:, 2 * h :]).mul_(2).sigmoid_()
            n.mul_(2).sub_(1)  # tanh(a) = 2 sigmoid(2a) - 1 (torch's CPU tanh is slower)
            state = torch.lerp(n, state, rz[:, h:])
            total += state
            if layer < layers - 1:
                outputs.append(state)
        inputs = outputs
    feats = torch.cat([state, total / x.shape[1]], 1)  # last and mean, as GRUClassifier.forward
    hid = F.gelu(torch.baddbmm(params["head.0.bias"].unsqueeze(2), params["head.0.weight"], feats))
    return torch.baddbmm(params["head.3.bias"].unsqueeze(2), params["head.3.weight"], hid)[:, 0]
