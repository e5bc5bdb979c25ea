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
from tqdm.auto import tqdm

from tardiff.config import schema
from tardiff.data import prepare
from tardiff.diffusion.schedule import NoiseSchedule
from tardiff.io import atomic_path, load_checkpoint, save_checkpoint, write_csv
from tardiff.models.denoiser import Denoiser
from tardiff.runtime import measured, pick_device, seed_everything, setup_logging

FORMAT = "tardiff.diffusion/1"
_MODEL_KEYS = ("base_channels", "channel_mults", "num_res_blocks", "dropout")


def diffusion_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``diffusion:`` section with schema defaults filled in for missing keys."""
    props = schema()["properties"]["diffusion"]["properties"]
    unknown = set(cfg) - set(props)
    if unknown:
        raise ValueError(f"unknown diffusion config keys: {sorted(unknown)}")
    return {key: copy.deepcopy(cfg.get(key, spec["default"])) for key, spec in props.items()}


def _build_model(n_features: int, seq_len: int, n_classes: int, cfg: dict) -> Denoiser:
    kwargs = {key: cfg[key] for key in _MODEL_KEYS}
    kwargs["channel_mults"] = tuple(kwargs["channel_mults"])
    return Denoiser(n_features, seq_len, n_classes=n_classes, **kwargs)


def train_diffusion(
    x: np.ndarray,
    y: np.ndarray,
    cfg: dict[str, Any],
    device: torch.device | str,
    seed: int,
    log: logging.Logger | None = None,
) -> tuple[Denoiser, list[tuple[int, float]]]:
    """Train a denoiser on ``x`` (N, T, C) with labels ``y`` (N,); return (EMA model, history).

    ``cfg`` is the ``diffusion:`` config section. The returned model is the EMA copy in eval mode
    on ``device``; ``history`` holds ``(step, loss)`` for every optimisation step (1-based).
    """
    cfg = diffusion_settings(cfg)
    log = log or logging.getLogger(__name__)
    if x.ndim != 3 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"expected x (N, T, C) and y (N,), got {x.shape} and {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or inf; impute before training the diffusion model")
    device = torch.device(device)
    seed_everything(seed)
    n, seq_len, n_features = x.shape
    n_classes = max(2, int(y.max()) + 1)
    schedule = NoiseSchedule.from_config(cfg)
    if schedule.prediction == "eps":
        log.warning(
            "diffusion: with eps-prediction, x0_hat = (x_t - sqrt(1-ab) eps) / sqrt(ab) amplifies "
            "eps errors up to %.0f-fold at the noisiest steps and small denoisers then sample "
            "far outside the data range; prediction: v avoids this",
            1 / float(schedule.sqrt_alphas_cumprod[-1]),
        )
    model = _build_model(n_features, seq_len, n_classes, cfg).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    warmup = max(1, cfg["warmup_steps"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warmup))

    data = torch.as_tensor(x, dtype=torch.float32, device=device)
    labels = torch.as_tensor(y, dtype=torch.long, device=device)
    gen = torch.Generator().manual_seed(seed)
    steps, batch = cfg["train_steps"], min(cfg["batch_size"], n)
    log_every = max(1, math.ceil(steps / 10))
    log.info(
        "diffusion: %d series (T=%d, C=%d), %d parameters, %d steps of batch %d on %s",
        n, seq_len, n_features, sum(p.numel() for p in model.parameters()), steps, batch, device,
    )  # fmt: skip
    history: list[tuple[int, float]] = []
    pending: list[torch.Tensor] = []
    model.train()
    for step in tqdm(range(1, steps + 1), desc="diffusion", disable=None):
        idx = torch.randint(n, (batch,), generator=gen)
        t = torch.randint(schedule.timesteps, (batch,), generator=gen)
        noise = torch.randn((batch, seq_len, n_features), generator=gen)
        drop = torch.rand(batch, generator=gen) < cfg["label_dropout"]
        idx, noise = idx.to(device), noise.to(device)  # t stays on CPU for the table lookups
        x0, y_in = data[idx], torch.where(drop.to(device), n_classes, labels[idx])
        pred = model(schedule.q_sample(x0, t, noise), t.to(device), y_in)
        loss = F.mse_loss(pred, schedule.target(x0, t, noise))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(cfg["ema_decay"], step / (step + 9))
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1 - decay)
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


def save_diffusion(
    path: str | Path, ema_model: Denoiser, cfg: dict[str, Any], extra: dict[str, Any]
) -> None:
    """Write the model (state dict + constructor kwargs), the diffusion config and ``extra``."""
    state = {k: v.detach().cpu() for k, v in ema_model.state_dict().items()}
    save_checkpoint(
        {
            "format": FORMAT,
            "state_dict": state,
            "model_kwargs": dict(ema_model.config),
            "config": diffusion_settings(cfg),
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
    return model, NoiseSchedule.from_config(ckpt["config"]), ckpt


def plot_loss(history: list[tuple[int, float]], path: str | Path) -> None:
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
    ax.set(xlabel="step", ylabel="MSE", yscale="log", title="diffusion training loss")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def run_diffusion_stage(
    cohort_dir: str, task: str, out_dir: str, config: dict[str, Any], log_file: str | None = None
) -> None:
    """Train on the cohort's train split; write model.pt, loss.csv and loss.png to ``out_dir``."""
    log = setup_logging(log_file)
    device = pick_device(config.get("device", "auto"))
    seed = int(config.get("seed", 0))
    prepared = prepare(cohort_dir, task, seed=seed)
    x, y = prepared.x["train"], prepared.y["train"]
    with measured() as watch:
        model, history = train_diffusion(x, y, config.get("diffusion", {}), device, seed, log)
    out = Path(out_dir)
    extra = {
        "transform": prepared.transform.state_dict(),
        "features": list(prepared.features),
        "task": task,
        "seq_len": int(x.shape[1]),
        "n_train": int(len(x)),
        "class_counts": np.bincount(y, minlength=model.n_classes).tolist(),
        "wall_s": watch.seconds,
        "peak_rss_mb": watch.peak_rss_mb,
        "device": str(device),
    }
    save_diffusion(out / "model.pt", model, config.get("diffusion", {}), extra)
    write_csv(pd.DataFrame(history, columns=["step", "loss"]), out / "loss.csv")
    plot_loss(history, out / "loss.png")
    log.info("diffusion: trained in %.1f s (peak RSS %.0f MiB)", watch.seconds, watch.peak_rss_mb)
