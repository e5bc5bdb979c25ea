"""Training of the class-conditional diffusion model, its checkpoint format and the stage.

Training: AdamW with linear learning-rate warm-up, MSE on the ``eps`` or ``v`` target at uniformly
drawn timesteps, label dropout (the label is replaced by the null token with probability
``label_dropout``, enabling classifier-free guidance), gradient-norm clipping at 1, and an EMA of
the weights whose decay ramps up as ``min(ema_decay, (1 + n) / (10 + n))`` after ``n`` updates so
that short runs still average trained weights. Batches, timesteps, noise and label dropout come
from one CPU ``torch.Generator`` seeded with ``seed``: a run is reproducible on CPU.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from tardiff.data import prepare, prepare_memory_mb
from tardiff.diffusion.schedule import NoiseSchedule
from tardiff.io import atomic_path, load_checkpoint, save_checkpoint, write_csv
from tardiff.layout import DiffusionFiles
from tardiff.models.denoiser import Denoiser
from tardiff.runtime import adamw, check_memory, measured, pick_device, progress, seed_everything
from tardiff.settings import DiffusionSettings

FORMAT = "tardiff.diffusion/1"
log = logging.getLogger(__name__)


def _build_model(n_features: int, seq_len: int, n_classes: int, s: DiffusionSettings) -> Denoiser:
    return Denoiser(
        n_features, seq_len, n_classes=n_classes, base_channels=s.base_channels,
        channel_mults=tuple(s.channel_mults), num_res_blocks=s.num_res_blocks, dropout=s.dropout,
    )  # fmt: skip


def train_diffusion(
    x: np.ndarray,
    y: np.ndarray,
    settings: DiffusionSettings,
    device: torch.device | str,
    seed: int,
) -> tuple[Denoiser, list[tuple[int, float]]]:
    """Train a denoiser on ``x`` (N, T, C) with labels ``y`` (N,); return (EMA model, history).

    The returned model is the EMA copy in eval mode on ``device``; ``history`` holds
    ``(step, loss)`` for every optimisation step (1-based).
    """
    if x.ndim != 3 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"expected x (N, T, C) and y (N,), got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or inf; impute before training the diffusion model")
    device = torch.device(device)
    seed_everything(seed)
    n, seq_len, n_features = x.shape
    n_classes = max(2, int(y.max()) + 1)
    schedule = NoiseSchedule.from_settings(settings)
    _warn_eps(schedule)
    model = _build_model(n_features, seq_len, n_classes, settings).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = adamw(model.parameters(), settings.lr, settings.weight_decay)
    warmup = max(1, settings.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warmup))

    data = torch.as_tensor(x, dtype=torch.float32, device=device)
    labels = torch.as_tensor(y, dtype=torch.long, device=device)
    gen = torch.Generator().manual_seed(seed)
    steps, batch = settings.train_steps, min(settings.batch_size, n)
    log_every = max(1, math.ceil(steps / 10))
    log.info(
        "diffusion: %d series (T=%d, C=%d), %d parameters, %d steps of batch %d on %s",
        n, seq_len, n_features, sum(p.numel() for p in model.parameters()), steps, batch, device,
    )  # fmt: skip
    history: list[tuple[int, float]] = []
    pending: list[torch.Tensor] = []
    model.train()
    for step in progress(range(1, steps + 1), steps, "diffusion training", "step"):
        loss = _batch_loss(model, schedule, data, labels, batch, settings.label_dropout, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        _ema_update(ema, model, min(settings.ema_decay, step / (step + 9)))
        pending.append(loss.detach())
        if step % log_every == 0 or step == steps:  # one device sync per logging interval
            values = torch.stack(pending).tolist()
            history.extend(zip(range(step - len(values) + 1, step + 1), values, strict=True))
            pending.clear()
            if not np.isfinite(values).all():
                raise FloatingPointError(f"diffusion loss is not finite by step {step}")
            log.info("diffusion step %d/%d: loss %.4f (mean of last %d)",
                     step, steps, np.mean(values), len(values))  # fmt: skip
    return ema.eval(), history


def _warn_eps(schedule: NoiseSchedule) -> None:
    if schedule.prediction == "eps":
        log.warning(
            "diffusion: with eps-prediction, x0_hat = (x_t - sqrt(1-ab) eps) / sqrt(ab) amplifies "
            "eps errors up to %.0f-fold at the noisiest steps and small denoisers then sample "
            "far outside the data range; prediction: v avoids this",
            1 / float(schedule.sqrt_alphas_cumprod[-1]),
        )


def _batch_loss(
    model: Denoiser,
    schedule: NoiseSchedule,
    data: torch.Tensor,
    labels: torch.Tensor,
    batch: int,
    label_dropout: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """MSE of one random batch: indices, timesteps, noise and label dropout drawn from ``gen``."""
    n, seq_len, n_features = data.shape
    idx = torch.randint(n, (batch,), generator=gen)
    t = torch.randint(schedule.timesteps, (batch,), generator=gen)
    noise = torch.randn((batch, seq_len, n_features), generator=gen)
    drop = torch.rand(batch, generator=gen) < label_dropout
    device = data.device
    idx, noise = idx.to(device), noise.to(device)  # t stays on CPU for the table lookups
    x0 = data[idx]
    y_in = torch.where(drop.to(device), model.n_classes, labels[idx])
    pred = model(schedule.q_sample(x0, t, noise), t.to(device), y_in)
    return F.mse_loss(pred, schedule.target(x0, t, noise))


@torch.no_grad()
def _ema_update(ema: Denoiser, model: Denoiser, decay: float) -> None:
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1 - decay)


def save_diffusion(
    path: str | Path, ema_model: Denoiser, settings: DiffusionSettings, extra: dict[str, Any]
) -> None:
    """Write the model (state dict + constructor kwargs), the diffusion config and ``extra``."""
    state = {k: v.detach().cpu() for k, v in ema_model.state_dict().items()}
    save_checkpoint(
        {
            "format": FORMAT,
            "state_dict": state,
            "model_kwargs": dict(ema_model.config),
            "config": settings.to_dict(),
            "extra": extra,
        },
        path,
    )


def load_diffusion(
    path: str | Path, device: torch.device | str = "cpu"
) -> tuple[Denoiser, NoiseSchedule, dict[str, Any]]:
    """Load a checkpoint of :func:`save_diffusion`: (model in eval mode, schedule, checkpoint)."""
    ckpt = load_checkpoint(path)
    if ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a diffusion checkpoint (format {ckpt.get('format')!r})")
    kwargs = dict(ckpt["model_kwargs"])
    kwargs["channel_mults"] = tuple(kwargs["channel_mults"])
    model = Denoiser(**kwargs)
    model.load_state_dict(ckpt["state_dict"])
    model.to(device).eval().requires_grad_(False)
    return model, NoiseSchedule.from_settings(DiffusionSettings.from_config(ckpt["config"])), ckpt


def plot_loss(history: list[tuple[int, float]], path: str | Path, title: str) -> None:
    """Training loss per step (light) and its moving average, log scale, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses = np.array(history, dtype=float).T
    window = max(1, len(losses) // 50)
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, losses, lw=0.5, alpha=0.35, label="loss")
    ax.plot(steps[window - 1 :], smooth, lw=1.5, label=f"moving mean ({window})")
    ax.set(xlabel="step", ylabel="MSE", yscale="log", title=title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def run_diffusion_stage(
    *,
    stays: str | Path,
    timeseries: str | Path,
    task: str,
    out: DiffusionFiles,
    settings: DiffusionSettings,
    seed: int,
    dataset: str = "cohort",
    device: str = "auto",
    mem_mb: float | None = None,
) -> None:
    """Train on the cohort's train split; write ``out.model``, ``out.loss`` and ``out.plot``
    (titled with ``dataset`` and ``task``)."""
    check_memory(prepare_memory_mb(timeseries), mem_mb, "diffusion training")
    torch_device = pick_device(device)
    prepared = prepare(stays, timeseries, task)
    x, y = prepared.x["train"], prepared.y["train"]
    with measured() as watch:
        model, history = train_diffusion(x, y, settings, torch_device, seed)
    extra = {
        "transform": prepared.transform.state_dict(),
        "features": list(prepared.features),
        "task": task,
        "seq_len": int(x.shape[1]),
        "n_train": int(len(x)),
        "class_counts": np.bincount(y, minlength=model.n_classes).tolist(),
        "wall_s": watch.wall_s,
        "peak_rss_mb": watch.peak_rss_mb,
        "device": str(torch_device),
    }
    save_diffusion(out.model, model, settings, extra)
    write_csv(pd.DataFrame(history, columns=["step", "loss"]), out.loss)
    target = "v" if settings.prediction == "v" else "noise"
    plot_loss(history, out.plot, f"{dataset} / {task}: diffusion training loss ({target} MSE)")
    log.info("diffusion: trained in %.1f s (peak RSS %.0f MiB)", watch.wall_s, watch.peak_rss_mb)
