"""Diffusion model, schedules, training, checkpoints and samplers (tiny, seeded, CPU)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from nan_denoiser import NaNAfter

from tardiff.config import ConfigError, schema
from tardiff.diffusion import train as train_mod
from tardiff.diffusion.samplers import generate, sample
from tardiff.diffusion.schedule import (
    NoiseSchedule,
    cosine_betas,
    linear_betas,
    logsnr_grid,
    timestep_grid,
)
from tardiff.diffusion.steppers import (
    SAMPLERS,
    STEPPERS,
    ddim_mean_std,
    ddpm_mean_std,
    guided_steps,
    shift_weights,
)
from tardiff.diffusion.train import (
    load_diffusion,
    run_diffusion_stage,
    save_diffusion,
    train_diffusion,
)
from tardiff.guidance.hook import Guidance
from tardiff.layout import DiffusionFiles, Layout
from tardiff.models.classifier import build_classifier
from tardiff.models.denoiser import Denoiser
from tardiff.settings import DiffusionSettings

TINY = {
    "base_channels": 8,
    "channel_mults": [1, 2],
    "num_res_blocks": 1,
    "timesteps": 50,
    "prediction": "eps",
    "train_steps": 60,
    "warmup_steps": 5,
    "batch_size": 32,
    "lr": 2e-3,
}


class GaussianOracle(torch.nn.Module):
    """Exact eps- or v-predictor (the schedule's prediction) for data x0 ~ N(mu[y], sd^2) i.i.d.
    per element (null label: mu = 0)."""

    def __init__(self, schedule: NoiseSchedule, mu=(-1.5, 1.5), sd=0.5):
        super().__init__()
        self.schedule, self.mu, self.sd, self.n_classes = schedule, (*mu, 0.0), sd, len(mu)

    def forward(self, x, t, y):
        a = self.schedule.at(self.schedule.sqrt_alphas_cumprod, t, x)
        b = self.schedule.at(self.schedule.sqrt_one_minus_alphas_cumprod, t, x)
        mu = torch.tensor(self.mu, dtype=x.dtype)[y].reshape(-1, 1, 1)
        eps = b * (x - a * mu) / (a**2 * self.sd**2 + b**2)
        if self.schedule.prediction == "eps":
            return eps
        x0 = mu + a * self.sd**2 * (x - a * mu) / (a**2 * self.sd**2 + b**2)
        return a * eps - b * x0


def toy_data(n=128, seq_len=8, n_features=2, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    phase = np.sin(np.linspace(0, np.pi, seq_len))[None, :, None]
    x = (2 * y[:, None, None] - 1) * phase + 0.3 * rng.standard_normal((n, seq_len, n_features))
    return x.astype(np.float32), y.astype(np.int64)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest single-threaded (and then do not fight over shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def settings(tiny_config):
    """``settings(**changes)``: the tiny config's diffusion section with ``TINY`` and ``changes``
    merged in, validated, as :class:`DiffusionSettings`."""

    def make(**changes):
        return DiffusionSettings.from_config(
            tiny_config(diffusion={**TINY, **changes})["diffusion"]
        )

    return make


@pytest.fixture(scope="module")
def tiny(settings):
    return settings()


@pytest.fixture(scope="module")
def trained(tiny):
    x, y = toy_data()
    model, history = train_diffusion(x, y, tiny, "cpu", seed=0)
    return model, history


# ----------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_schedule_monotone_and_endpoints(kind, settings):
    sch = NoiseSchedule.from_settings(settings(schedule=kind, timesteps=1000, prediction="eps"))
    ab = sch.alphas_cumprod
    assert ab.dtype == torch.float64 and sch.timesteps == 1000
    assert bool((ab[1:] < ab[:-1]).all())
    assert ab[0] > 0.999 and ab[-1] < 1e-4
    assert sch.posterior_variance[0] == 0


def test_cosine_matches_closed_form():
    betas = cosine_betas(100)
    ab = torch.cumprod(1 - betas, 0)
    f = lambda t: np.cos((t / 100 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    np.testing.assert_allclose(ab[:50].numpy(), f(np.arange(1, 51)) / f(0), rtol=1e-10)
    assert betas.max() <= 0.999
    assert linear_betas(100)[0] == pytest.approx(1e-3)


def test_q_sample_statistics():
    sch = NoiseSchedule(cosine_betas(100))
    gen = torch.Generator().manual_seed(0)
    x0 = torch.full((20000, 1, 1), 2.0, dtype=torch.float64)
    t = torch.full((20000,), 40)
    xt = sch.q_sample(x0, t, torch.randn(x0.shape, generator=gen, dtype=torch.float64))
    a, b = float(sch.sqrt_alphas_cumprod[40]), float(sch.sqrt_one_minus_alphas_cumprod[40])
    assert float(xt.mean()) == pytest.approx(2 * a, abs=0.03)
    assert float(xt.std()) == pytest.approx(b, rel=0.03)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_output_conversions_invert(prediction):
    sch = NoiseSchedule(cosine_betas(200), prediction)
    gen = torch.Generator().manual_seed(1)
    x0 = torch.randn((200, 5, 3), generator=gen, dtype=torch.float64)
    noise = torch.randn((200, 5, 3), generator=gen, dtype=torch.float64)
    t = torch.arange(200)
    xt = sch.q_sample(x0, t, noise)
    x0_hat, eps_hat = sch.split_output(xt, t, sch.target(x0, t, noise))
    np.testing.assert_allclose(eps_hat, noise, atol=1e-9)
    np.testing.assert_allclose(x0_hat, x0, atol=1e-6 if prediction == "eps" else 1e-9)
    np.testing.assert_allclose(sch.eps_from_x0(xt, t, x0), noise, atol=1e-9)


def test_bad_schedule_arguments(settings):
    with pytest.raises(ValueError, match="prediction"):
        NoiseSchedule(cosine_betas(10), "x0")
    # schedule names are checked once, by the config schema
    with pytest.raises(ConfigError, match="config key 'diffusion.schedule'"):
        settings(schedule="sigmoid")


# ----------------------------------------------------------------------------- denoiser


@pytest.mark.parametrize("seq_len", [24, 288, 25])
def test_denoiser_shapes_and_zero_init(seq_len):
    torch.manual_seed(0)
    model = Denoiser(3, seq_len, base_channels=16, channel_mults=(1, 2, 2), num_res_blocks=1)
    x = torch.randn(4, seq_len, 3)
    out = model(x, torch.tensor([0, 10, 500, 999]), torch.tensor([0, 1, 2, 1]))
    assert out.shape == (4, seq_len, 3)
    assert bool((out == 0).all())  # zero-initialised output convolution


def test_denoiser_label_and_null_handling():
    torch.manual_seed(0)
    model = Denoiser(2, 24, base_channels=8, channel_mults=(1, 2), num_res_blocks=1).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    x = torch.randn(1, 24, 2).repeat(3, 1, 1)
    out = model(x, torch.full((3,), 7), torch.tensor([0, 1, 2]))
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[0], out[2])
    with pytest.raises(IndexError):
        model(x[:1], torch.tensor([7]), torch.tensor([3]))
    # samples in a batch do not interact (no batch statistics anywhere)
    single = model(x[1:2], torch.tensor([7]), torch.tensor([1]))
    torch.testing.assert_close(single[0], out[1])


# ----------------------------------------------------------------------------- training


def test_training_loss_decreases(trained, tiny):
    model, history = trained
    losses = [loss for _, loss in history]
    assert [s for s, _ in history] == list(range(1, tiny.train_steps + 1))
    assert np.mean(losses[-15:]) < 0.7 * np.mean(losses[:5])
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_training_is_deterministic(settings):
    x, y = toy_data()
    cfg = settings(train_steps=10, prediction="v")
    m1, h1 = train_diffusion(x, y, cfg, "cpu", seed=3)
    m2, h2 = train_diffusion(x, y, cfg, "cpu", seed=3)
    m3, h3 = train_diffusion(x, y, cfg, "cpu", seed=4)
    assert h1 == h2 and h1 != h3
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_training_rejects_bad_input(settings, tiny):
    x, y = toy_data(n=8)
    # unknown diffusion keys are rejected by the config schema, naming the key
    with pytest.raises(ConfigError, match=r"config key 'diffusion'.*'typo'"):
        settings(typo=1)
    x[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_diffusion(x, y, tiny, "cpu", seed=0)


def test_save_load_round_trip(trained, tiny, tmp_path):
    model, _ = trained
    extra = {"transform": {"mean": [1.0, 2.0]}, "task": "mortality"}
    save_diffusion(tmp_path / "model.pt", model, tiny, extra)
    loaded, schedule, ckpt = load_diffusion(tmp_path / "model.pt", "cpu")
    assert ckpt["extra"] == extra and ckpt["config"] == tiny.to_dict()
    assert DiffusionSettings.from_config(ckpt["config"]) == tiny
    assert schedule.timesteps == TINY["timesteps"] and schedule.prediction == "eps"
    x = torch.randn(3, 8, 2)
    t, y = torch.tensor([0, 20, 49]), torch.tensor([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(model(x, t, y), loaded(x, t, y))


def test_run_diffusion_stage(monkeypatch, tmp_path, tiny_config):
    x, y = toy_data(n=40)

    class FakeTransform:
        def state_dict(self):
            return {"mean": [0.0, 0.0], "sd": [1.0, 1.0]}

    class FakePrepared:
        features = ["hr", "rr"]
        transform = FakeTransform()

    prepared = FakePrepared()
    prepared.x, prepared.y = {"train": x}, {"train": y}
    calls, estimates = [], []
    monkeypatch.setattr(train_mod, "prepare", lambda *a, **k: calls.append((a, k)) or prepared)
    monkeypatch.setattr(train_mod, "prepare_memory_mb", lambda ts: estimates.append(ts) or 500)
    config = tiny_config(seed=1, diffusion={**TINY, "train_steps": 6})
    settings = DiffusionSettings.from_config(config["diffusion"])
    out = Layout(str(tmp_path / "results")).diffusion("d", "mortality")
    assert isinstance(out, DiffusionFiles)
    stage = {
        "stays": "s.parquet", "timeseries": "ts.parquet", "task": "mortality", "out": out,
        "settings": settings, "seed": config["seed"], "device": config["device"],
    }  # fmt: skip
    with pytest.raises(MemoryError, match="diffusion training needs an estimated 500 MiB"):
        run_diffusion_stage(**stage, mem_mb=499)
    assert calls == [] and not (tmp_path / "results").exists()
    run_diffusion_stage(**stage, mem_mb=500)
    assert calls == [(("s.parquet", "ts.parquet", "mortality"), {})]
    assert estimates == ["ts.parquet", "ts.parquet"]
    loss = pd.read_csv(out.loss)
    assert list(loss.columns) == ["step", "loss"] and len(loss) == 6
    assert Path(out.plot).stat().st_size > 0
    model, _, ckpt = load_diffusion(out.model)
    assert ckpt["extra"]["transform"] == FakeTransform().state_dict()
    assert ckpt["extra"]["features"] == ["hr", "rr"] and ckpt["extra"]["seq_len"] == 8
    assert ckpt["extra"]["wall_s"] > 0 and ckpt["extra"]["peak_rss_mb"] > 0
    assert ckpt["config"] == settings.to_dict()
    assert model.n_classes == 2
    # the seed reaches training: the stage's model is the one train_diffusion gives for seed 1
    direct, _ = train_diffusion(x, y, settings, "cpu", seed=1)
    for a, b in zip(direct.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


# ----------------------------------------------------------------------------- samplers


def test_timestep_grid():
    assert timestep_grid(50, 50) == list(range(49, -1, -1))
    assert timestep_grid(100, 5) == [99, 79, 59, 39, 19]
    assert timestep_grid(1000, 1) == [999]
    grid = timestep_grid(200, 20)
    assert grid[0] == 199 and len(set(grid)) == 20
    with pytest.raises(ValueError):
        timestep_grid(10, 11)


def test_logsnr_grid_spans_signal_to_noise_1_50_to_50_uniform_in_log_snr():
    sch = NoiseSchedule(cosine_betas(1000), "v")
    ab = sch.alphas_cumprod.double().numpy()
    lam = 0.5 * np.log(ab / (1 - ab))
    edge = math.log(50)
    first, last = np.abs(lam + edge).argmin(), np.abs(lam - edge).argmin()
    for k in (1, 2, 10, 12, 25, 1000):
        grid = logsnr_grid(sch, k)
        assert grid[0] == first and (k == 1 or grid[-1] == last) and len(grid) <= k
        assert grid == sorted(set(grid), reverse=True)  # strictly descending
    assert lam[first] == pytest.approx(-edge, abs=0.02) and lam[last] == pytest.approx(
        edge, abs=0.2
    )
    grid = logsnr_grid(sch, 12)
    assert len(grid) == 12  # no two points round onto one timestep inside the range
    assert np.diff(lam[grid]) == pytest.approx(np.full(11, 2 * edge / 11), rel=0.1)
    assert STEPPERS["dpm_solver++"](sch).grid(12) == grid
    assert STEPPERS["ddim"](sch).grid(25) == timestep_grid(1000, 25)
    # the schedule's own range bounds it: the whole range with a huge bound
    wide = logsnr_grid(sch, 25, bound=1e9)
    assert wide[0] == 999 and wide[-1] == 0
    with pytest.raises(ValueError, match="steps"):
        logsnr_grid(sch, 1001)


def test_ddim_eta1_full_grid_equals_ddpm_step():
    sch = NoiseSchedule(cosine_betas(50))
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn((4, 6, 2), generator=gen, dtype=torch.float64)
    x0 = torch.randn((4, 6, 2), generator=gen, dtype=torch.float64)
    for t in range(50):
        mean_ddpm, sd_ddpm = ddpm_mean_std(sch, x_t, x0, t)
        mean_ddim, sd_ddim = ddim_mean_std(sch, x_t, x0, t, t - 1, eta=1.0)
        torch.testing.assert_close(mean_ddim, mean_ddpm, atol=1e-6, rtol=0)
        assert sd_ddim == pytest.approx(sd_ddpm, abs=1e-9)
    # eta = 0 is deterministic and lands exactly on x0 at the clean end
    mean, sd = ddim_mean_std(sch, x_t, x0, 5, -1, eta=0.0)
    assert sd == 0 and torch.allclose(mean, x0)


def test_steppers_cover_samplers_and_match_closed_form():
    assert tuple(STEPPERS) == SAMPLERS == ("ddpm", "ddim", "dpm_solver++")
    sch = NoiseSchedule(cosine_betas(20))
    ab, beta = sch.alphas_cumprod.tolist() + [1.0], sch.betas.tolist()  # ab[-1] = 1: clean end
    lam = lambda a: 0.5 * math.log(a / (1 - a))  # noqa: E731  half log-SNR
    x_t = torch.tensor([[[0.5, -1.0], [2.0, 0.25]]], dtype=torch.float64)
    x0s = [torch.tensor([[[0.1, 0.3], [-0.7, 1.2]]], dtype=torch.float64) * k for k in (1, -2, 3)]
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)  # noqa: E731

    ddpm = STEPPERS["ddpm"](sch)
    assert ddpm.grid(3) == list(range(19, -1, -1)) and ddpm.new_state() is None
    for t in (0, 7, 19):  # x_{t-1} = c1 x0 + c2 x_t + sqrt(beta~) z
        c1 = math.sqrt(ab[t - 1]) * beta[t] / (1 - ab[t])
        c2 = math.sqrt(1 - beta[t]) * (1 - ab[t - 1]) / (1 - ab[t])
        mean, sd = ddpm.step(x_t, x0s[0], t, t - 1, None)
        close(mean, c1 * x0s[0] + c2 * x_t)
        want_sd = math.sqrt(beta[t] * (1 - ab[t - 1]) / (1 - ab[t]))
        assert sd == ddpm.noise_sd(t, t - 1) == pytest.approx(want_sd, rel=1e-12, abs=1e-15)

    ddim = STEPPERS["ddim"](sch, eta=0.6)
    assert ddim.grid(4) == timestep_grid(20, 4)
    for t, s in ((12, 5), (3, -1)):  # x_s = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma^2) eps
        sigma = 0.6 * math.sqrt((1 - ab[s]) / (1 - ab[t]) * (1 - ab[t] / ab[s]))
        eps = (x_t - math.sqrt(ab[t]) * x0s[0]) / math.sqrt(1 - ab[t])
        mean, sd = ddim.step(x_t, x0s[0], t, s, None)
        close(mean, math.sqrt(ab[s]) * x0s[0] + math.sqrt(1 - ab[s] - sigma**2) * eps)
        assert sd == ddim.noise_sd(t, s) == pytest.approx(sigma, rel=1e-12, abs=1e-15)

    dpm = STEPPERS["dpm_solver++"](sch)
    state = dpm.new_state()

    def dpm_formula(x, t, s, d):  # x_s = sqrt((1 - ab_s) / (1 - ab_t)) x - sqrt(ab_s) expm1(-h) d
        h = lam(ab[s]) - lam(ab[t])
        return math.sqrt((1 - ab[s]) / (1 - ab[t])) * x - math.sqrt(ab[s]) * math.expm1(-h) * d

    x1, sd = dpm.step(x_t, x0s[0], 15, 9, state)  # first order: d = x0_hat
    close(x1, dpm_formula(x_t, 15, 9, x0s[0]))
    assert sd == dpm.noise_sd(15, 9) == 0
    # second order: d = (1 + 1/(2r)) x0_cur - 1/(2r) x0_prev with r = h_prev / h
    r = (lam(ab[9]) - lam(ab[15])) / (lam(ab[3]) - lam(ab[9]))
    x2, sd = dpm.step(x1, x0s[1], 9, 3, state)
    close(x2, dpm_formula(x1, 9, 3, (1 + 1 / (2 * r)) * x0s[1] - 1 / (2 * r) * x0s[0]))
    # into the clean end: x0_hat itself
    x3, sd = dpm.step(x2, x0s[2], 3, -1, state)
    assert torch.equal(x3, x0s[2]) and sd == 0
    # a fresh state starts first order again (the history is per run, not shared)
    close(dpm.step(x_t, x0s[0], 15, 9, dpm.new_state())[0], x1)


def test_sampler_runs_are_independent_and_names_checked():
    sch = NoiseSchedule(cosine_betas(50))
    oracle, y = GaussianOracle(sch), torch.tensor([0, 1, 1])
    runs = [
        sample(oracle, sch, y, 4, 2, "dpm_solver++", 5, generator=torch.Generator().manual_seed(2))
        for _ in range(2)
    ]
    assert torch.equal(*runs)
    with pytest.raises(ValueError, match=r"one of \('ddpm', 'ddim', 'dpm_solver\+\+'\)"):
        sample(oracle, sch, y, 4, 2, sampler="DDIM")


def _exact_output(sch: NoiseSchedule, grid: list[int], eta: float, mu: float, sd: float):
    """Mean and SD of a DDIM/DDPM run with the Gaussian oracle, by propagating the linear map."""
    ab = sch.alphas_cumprod.numpy()
    mean, var = 0.0, 1.0
    for i, t in enumerate(grid):
        ab_s = ab[grid[i + 1]] if i + 1 < len(grid) else 1.0
        a, b = np.sqrt(ab[t]), np.sqrt(1 - ab[t])
        gain = a * sd**2 / (a**2 * sd**2 + b**2)  # x0_hat = mu + gain (x_t - a mu)
        sigma = eta * np.sqrt((1 - ab_s) / (1 - ab[t]) * (1 - ab[t] / ab_s))
        c = np.sqrt(1 - ab_s - sigma**2)
        p, q = np.sqrt(ab_s) - c * a / b, c / b  # x_s = p x0_hat + q x_t + sigma z
        mean = (p * gain + q) * mean + p * (mu - gain * a * mu)
        var = (p * gain + q) ** 2 * var + sigma**2
    return mean, np.sqrt(var)


def test_samplers_match_gaussian_target_and_each_other():
    sch = NoiseSchedule(cosine_betas(200))
    oracle = GaussianOracle(sch)
    labels = np.repeat([0, 1], 1000)
    full = list(range(199, -1, -1))
    runs = {  # name: (sampler kwargs, grid and eta of the exact prediction)
        "ddpm": (dict(sampler="ddpm"), (full, 1.0)),
        "ddim_full": (dict(sampler="ddim", steps=200, eta=1.0), (full, 1.0)),
        "ddim_10": (dict(sampler="ddim", steps=10, eta=1.0), (timestep_grid(200, 10), 1.0)),
        "ddim_10_eta0": (dict(sampler="ddim", steps=10, eta=0.0), (timestep_grid(200, 10), 0.0)),
        "dpm_20": (dict(sampler="dpm_solver++", steps=20), None),
    }
    stats = {}
    for name, (kw, exact) in runs.items():
        x, _ = generate(oracle, sch, labels, 4, 2, 2000, seed=0, progress=False, **kw)
        assert x.shape == (2000, 4, 2) and x.dtype == np.float32
        for c in (0, 1):
            mean, sd = float(x[labels == c].mean()), float(x[labels == c].std())
            stats[name, c] = mean, sd
            assert mean == pytest.approx(oracle.mu[c], abs=0.03), (name, c)
            if exact is not None:
                assert sd == pytest.approx(_exact_output(sch, *exact, 0.0, oracle.sd)[1], abs=0.015)
    # ancestral DDPM and DDIM(k=T, eta=1) are the same process, and (T = 200) close to the target
    for c in (0, 1):
        assert stats["ddpm", c] == pytest.approx(stats["ddim_full", c], abs=0.02)
        for name in ("ddpm", "ddim_full", "dpm_20"):
            assert stats[name, c][1] == pytest.approx(oracle.sd, abs=0.02), (name, c)
    # few-step DDIM shrinks the spread even with an exact denoiser (known discretisation error)
    assert stats["ddim_10", 0][1] < 0.45
    # same seed and noise sequence: DDIM(k=T, eta=1) reproduces ancestral DDPM sample by sample
    xa, _ = generate(oracle, sch, labels[:64], 4, 2, 64, sampler="ddpm", progress=False)
    xb, _ = generate(oracle, sch, labels[:64], 4, 2, 64, "ddim", 200, 1.0, progress=False)
    np.testing.assert_allclose(xa, xb, atol=2e-3)


def test_sd_bias_on_the_default_schedule_with_an_exact_denoiser():
    """Issue 8 §3 oracle (``benchmarks/sampler_bias.py``): on the default schedule (cosine,
    T = 1000, v-prediction) an exact denoiser leaves only the sampler's own SD bias. DDPM-1000
    and DPM-Solver++-50 keep the data SD within 2 % (exact: 0.998 / 0.990 and 0.999 / 0.991 for
    s = 1 / 0.2); DDIM-20 (eta = 1) shrinks it (exact: 0.901 / 0.765)."""
    sch = NoiseSchedule(cosine_betas(1000), "v")
    labels = np.zeros(2048, dtype=np.int64)
    runs = {"ddpm": ("ddpm", 1000, 1.0), "dpm_50": ("dpm_solver++", 50, 1.0)}
    for sd in (1.0, 0.2):
        oracle = GaussianOracle(sch, mu=(0.0, 0.0), sd=sd)
        for name, (sampler, steps, eta) in runs.items():
            x, _ = generate(oracle, sch, labels, 8, 2, 2048, sampler, steps, eta, progress=False)
            assert float(x.std()) / sd == pytest.approx(1.0, abs=0.02), (name, sd)
            assert abs(float(x.mean())) < 0.03 * sd, (name, sd)
    x, _ = generate(oracle, sch, labels[:512], 8, 2, 512, "ddim", 20, 1.0, progress=False)
    assert float(x.std()) / 0.2 < 0.8  # sd = 0.2


def test_default_sampler_meets_the_sd_bias_target():
    """Issue 8 §3 target: the default sampler and steps keep the SD of an exact denoiser's
    samples within 3 % of the data's, for data SD 1 and 0.2, at <= 50 network evaluations."""
    gen = schema()["properties"]["generation"]["properties"]
    sampler, steps = gen["sampler"]["default"], gen["steps"]["default"]
    sch = NoiseSchedule(cosine_betas(1000), "v")
    labels = np.zeros(2048, dtype=np.int64)
    for sd in (1.0, 0.2):
        diag = []
        oracle = GaussianOracle(sch, mu=(0.0, 0.0), sd=sd)
        x, diag = generate(oracle, sch, labels, 8, 2, 2048, sampler, steps, progress=False)
        assert float(x.std()) / sd == pytest.approx(1.0, abs=0.03), sd
        assert len(diag) <= 50


def test_guidance_hook_contract():
    sch = NoiseSchedule(cosine_betas(50))
    oracle = GaussianOracle(sch)
    y = torch.tensor([0, 1] * 32)
    seen = []

    def shift_up(x0_hat, x_t, y_in, t, sigma):
        assert torch.is_grad_enabled() and x0_hat.shape == x_t.shape == (64, 4, 2)
        assert torch.equal(y_in, y) and sigma > 0
        seen.append(t)
        return torch.full_like(x0_hat, 0.2)

    base_diag, guided_diag = [], []
    kw = dict(sampler="ddim", steps=10, eta=1.0)
    base = sample(
        oracle, sch, y, 4, 2, **kw, generator=torch.Generator().manual_seed(5),
        diagnostics=base_diag,
    )  # fmt: skip
    guided = sample(
        oracle, sch, y, 4, 2, **kw, guidance=shift_up,
        generator=torch.Generator().manual_seed(5), diagnostics=guided_diag,
    )  # fmt: skip
    assert seen == timestep_grid(50, 10) == [d["t"] for d in guided_diag]
    assert [d["step"] for d in guided_diag] == list(range(10))
    assert all(d["shift_rms"] == 0 for d in base_diag)
    assert all(d["shift_rms"] == pytest.approx(0.2) for d in guided_diag)
    assert all(d["x0_rms"] > 0 and d["sigma"] > 0 for d in guided_diag)
    # the last step lands on x0_hat + shift, so the final shift survives in full
    assert float((guided - base).mean()) > 0.15
    with pytest.raises(ValueError, match="shape"):
        sample(oracle, sch, y, 4, 2, guidance=lambda *a: torch.zeros(1), steps=2)


def test_ddpm_guidance_moves_mean_by_coef1():
    sch = NoiseSchedule(cosine_betas(50))
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn((2, 3, 1), generator=gen, dtype=torch.float64)
    x0 = torch.randn((2, 3, 1), generator=gen, dtype=torch.float64)
    for t in (1, 25, 49):
        moved = ddpm_mean_std(sch, x_t, x0 + 0.1, t)[0] - ddpm_mean_std(sch, x_t, x0, t)[0]
        torch.testing.assert_close(moved, torch.full_like(moved, 0.1) * sch.posterior_mean_coef1[t])


def test_classifier_free_guidance_and_clipping():
    sch = NoiseSchedule(cosine_betas(50))
    oracle = GaussianOracle(sch)
    y = torch.ones(500, dtype=torch.long)
    plain = sample(oracle, sch, y, 4, 1, steps=10, generator=torch.Generator().manual_seed(0))
    cfg = sample(
        oracle, sch, y, 4, 1, steps=10, cfg_scale=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert float(cfg.mean()) > float(plain.mean()) + 0.2  # pushed away from the null (mu = 0)
    clipped = sample(oracle, sch, y, 4, 1, steps=10, clip_x0=0.5, eta=0.0)
    assert float(clipped.abs().max()) <= 0.5 + 1e-6


def test_generate_determinism_and_label_order(trained, tiny):
    model, _ = trained
    sch = NoiseSchedule.from_settings(tiny)
    labels = np.array([1, 0, 0, 1, 1, 0, 1])
    a, diag = generate(model, sch, labels, 8, 2, batch_size=3, steps=5, seed=11, progress=False)
    b, _ = generate(model, sch, labels, 8, 2, batch_size=3, steps=5, seed=11, progress=False)
    c, _ = generate(model, sch, labels, 8, 2, batch_size=3, steps=5, seed=12, progress=False)
    assert a.shape == (7, 8, 2) and np.array_equal(a, b) and not np.allclose(a, c)
    assert len(diag) == 3 * 5 and [d["batch"] for d in diag[::5]] == [0, 1, 2]

    oracle = GaussianOracle(sch)
    x, _ = generate(oracle, sch, labels, 8, 2, batch_size=3, steps=10, progress=False)
    assert np.array_equal(x.mean(axis=(1, 2)) > 0, labels == 1)
    with pytest.raises(ValueError, match="sampler"):
        generate(oracle, sch, labels, 8, 2, 3, sampler="euler", progress=False)


# --------------------------------------------------- bounded, finite samples; diagnostics (issue 8)


def test_x0_coef_is_the_move_of_the_step_mean():
    sch = NoiseSchedule(cosine_betas(20))
    gen = torch.Generator().manual_seed(0)
    x_t, x0, x0_prev = (torch.randn((2, 3, 2), generator=gen, dtype=torch.float64) for _ in "abc")
    for name, t, s, prev in (("ddpm", 7, 6, False), ("ddim", 12, 5, False), ("ddim", 3, -1, False),
                             ("dpm_solver++", 15, 9, False), ("dpm_solver++", 9, 3, True),
                             ("dpm_solver++", 3, -1, True)):  # fmt: skip
        stepper = STEPPERS[name](sch, eta=0.6)

        def state(prev=prev, stepper=stepper):
            st = stepper.new_state()
            if prev:  # a previous step 15 -> 9 makes the next one second order
                stepper.step(x_t, x0_prev, 15, 9, st)
            return st

        coef = stepper.x0_coef(t, s, state())
        moved = (
            stepper.step(x_t, x0 + 0.1, t, s, state())[0] - stepper.step(x_t, x0, t, s, state())[0]
        )
        torch.testing.assert_close(moved, torch.full_like(moved, 0.1 * coef), rtol=1e-9, atol=1e-12)


def _coefs_by_stepping(stepper, grid):
    """|c1| of each step, read off a run of the stepper itself (zeros in, so x plays no part)."""
    coefs, state = [], stepper.new_state()
    for i, t in enumerate(grid):
        s = grid[i + 1] if i + 1 < len(grid) else -1
        coefs.append(abs(stepper.x0_coef(t, s, state)))
        stepper.step(torch.zeros(1), torch.zeros(1), t, s, state)
    return coefs


def test_guided_steps_skip_the_longest_prefix_within_the_share():
    assert guided_steps([1, 2, 3, 4], 0.0) == [True] * 4
    assert guided_steps([1, 2, 3, 4], 0.1) == [False, True, True, True]  # 1 <= 1
    assert guided_steps([1, 2, 3, 4], 0.29) == [False, True, True, True]  # 1 + 2 > 2.9
    assert guided_steps([1, 2, 3, 4], 0.3) == [False, False, True, True]
    assert guided_steps([0, 0, 5, 5], 0.0) == [True] * 4  # 0 guides every step
    assert guided_steps([0, 0, 5, 5], 0.1) == [False, False, True, True]


def test_guidance_is_skipped_where_it_cannot_move_the_step_mean():
    sch = NoiseSchedule(cosine_betas(1000), "v")
    y = torch.tensor([0, 1] * 4)
    stepper, called = STEPPERS["dpm_solver++"](sch), []

    def hook(x0, x_t, y_in, t, sigma):
        called.append(t)
        return torch.full_like(x0, 0.1)

    steps = schema()["properties"]["generation"]["properties"]["steps"]["default"]
    grid = stepper.grid(steps)
    coefs = dict(zip(grid, _coefs_by_stepping(stepper, grid), strict=True))
    assert list(coefs.values()) == stepper.x0_coefs(grid)
    default = schema()["properties"]["generation"]["properties"]["guide_skip_share"]["default"]
    runs = {}
    for share in (0.0, default):
        called.clear()
        diag = []
        gen = torch.Generator().manual_seed(0)
        runs[share] = sample(GaussianOracle(sch), sch, y, 4, 2, "dpm_solver++", steps,
                             guidance=hook, generator=gen, diagnostics=diag,
                             guide_skip_share=share)  # fmt: skip
        assert [d["shift_rms"] > 0 for d in diag] == [t in called for t in grid]
    skip = len(grid) - len(called)  # with a constant schedule, the noisiest steps are skipped
    assert called == grid[skip:] and skip >= 1
    skipped = sum(c for t, c in coefs.items() if t not in called)
    assert skipped <= default * sum(coefs.values()) < skipped + coefs[grid[skip]]
    torch.testing.assert_close(runs[default], runs[0.0], atol=0.05, rtol=0)


@pytest.mark.parametrize(("sampler", "steps", "eta"), [("ddim", 20, 1.0), ("ddim", 50, 0.0),
                                                        ("ddpm", 50, 1.0)])  # fmt: skip
def test_the_skipped_share_of_the_move_does_not_depend_on_the_sampler(sampler, steps, eta):
    sch = NoiseSchedule(cosine_betas(50 if sampler == "ddpm" else 1000), "v")
    stepper = STEPPERS[sampler](sch, eta)
    grid, called = stepper.grid(steps), []
    coefs = _coefs_by_stepping(stepper, grid)
    hook = lambda x0, x_t, y, t, sigma: called.append(t) or torch.zeros_like(x0)  # noqa: E731
    sample(GaussianOracle(sch), sch, torch.tensor([0, 1]), 3, 2, sampler, steps, eta,
           guidance=hook, guide_skip_share=0.06)  # fmt: skip
    skip = len(grid) - len(called)
    assert called == grid[skip:] and skip >= 1
    assert sum(coefs[:skip]) <= 0.06 * sum(coefs) < sum(coefs[: skip + 1])


def test_mean_move_diagnostics_of_a_ddim_step():
    sch = NoiseSchedule(cosine_betas(50))
    diag = []
    y = torch.tensor([0, 1] * 4)
    sample(GaussianOracle(sch), sch, y, 4, 2, "ddim", 5, 0.6,
           guidance=lambda x0, *a: torch.full_like(x0, 0.2), diagnostics=diag)  # fmt: skip
    ab = sch.alphas_cumprod.tolist()
    t, s = timestep_grid(50, 5)[1:3]  # step 1 by hand
    sigma = 0.6 * math.sqrt((1 - ab[s]) / (1 - ab[t]) * (1 - ab[t] / ab[s]))
    c1 = math.sqrt(ab[s]) - math.sqrt(1 - ab[s] - sigma**2) * math.sqrt(ab[t] / (1 - ab[t]))
    row = diag[1]
    assert row["t"] == t and row["sigma"] == pytest.approx(sigma)
    assert row["mean_move"] == pytest.approx(0.2 * c1, rel=1e-6)
    assert row["mean_move_ratio"] == pytest.approx(0.2 * c1 / sigma, rel=1e-6)
    assert row["shift_rms"] == pytest.approx(0.2)  # the old columns stay
    assert diag[-1]["mean_move"] == pytest.approx(0.2)  # into the clean end: c1 = 1
    plain = []
    sample(GaussianOracle(sch), sch, y, 4, 2, "ddim", 5, diagnostics=plain)
    assert all(d["mean_move"] == 0 == d["mean_move_ratio"] for d in plain)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_clip_x0_bounds_the_returned_samples(sampler):
    sch = NoiseSchedule(cosine_betas(20))
    y = torch.tensor([0, 1] * 8)

    def push(x0, *a):
        return torch.full_like(x0, 5.0)

    kw = dict(sampler=sampler, steps=5, guidance=push)
    free = sample(
        GaussianOracle(sch), sch, y, 4, 2, **kw, generator=torch.Generator().manual_seed(0)
    )
    assert float(free.abs().max()) > 3.0  # the last step adds the full shift
    bound = sample(GaussianOracle(sch), sch, y, 4, 2, **kw, clip_x0=1.5,
                   generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert float(bound.abs().max()) <= 1.5


def test_non_finite_values_raise_naming_batch_and_step():
    sch = NoiseSchedule(cosine_betas(20))
    labels = np.array([0, 1] * 6)
    # the denoiser fails in batch 1 (of 3), step 2 (of 4): call 4 + 2 + 1
    nan_model = NaNAfter(GaussianOracle(sch), k=6)
    with pytest.raises(FloatingPointError, match=r"batch 1, step 2 \(t=\d+\): non-finite x0_hat"):
        generate(nan_model, sch, labels, 4, 2, 4, steps=4, progress=False)
    # the guidance classifier fails (finite differences: two forwards per step) in batch 2, step 1
    torch.manual_seed(0)
    clf = build_classifier("gru", 2, 4, 1, 0.0).eval()

    class NaNClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner, self.calls = clf, 0

        def forward(self, x):
            self.calls += 1
            return self.inner(x) * (float("nan") if self.calls > 2 * (2 * 4 + 1) else 1.0)

    hook = Guidance(
        "tardiff",
        NaNClassifier().eval(),
        torch.randn(sum(p.numel() for p in clf.parameters())),
        0.1,
    )
    pattern = r"batch 2, step 1 \(t=\d+\): non-finite guidance term J \(tardiff guidance\)"
    with pytest.raises(FloatingPointError, match=pattern):
        generate(GaussianOracle(sch), sch, labels, 4, 2, 4, steps=4, guidance=hook, progress=False)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_shift_schedules(sampler):
    """constant, no_final, cutoff and noise factors by hand; the noise-aware shift vanishes at
    the final step and no guidance call is made there."""
    sch = NoiseSchedule(cosine_betas(50), "v")
    grid = STEPPERS[sampler](sch, 1.0).grid(10)
    ab = sch.alphas_cumprod.tolist()
    assert shift_weights(sch, grid, "constant") == [1.0] * len(grid)
    assert shift_weights(sch, grid, "no_final") == [1.0] * (len(grid) - 1) + [0.0]
    cut = shift_weights(sch, grid, "cutoff", 0.3)
    assert cut == [float((1 - ab[t]) ** 0.5 >= 0.3) for t in grid] and 0 < sum(cut) < len(grid)
    noise = shift_weights(sch, grid, "noise")
    assert noise[-1] == 0.0 and noise[0] == 1.0
    for t, w in zip(grid[:-1], noise[:-1], strict=True):
        assert w == pytest.approx(min(1.0, (1 - ab[t]) / ab[t] ** 0.5))
    assert noise[:-1] == sorted(noise[:-1], reverse=True)  # fades with the noise
    with pytest.raises(ValueError, match="shift schedule"):
        shift_weights(sch, grid, "sometimes")
    called, diag = [], []
    hook = lambda x0, x_t, y, t, sigma: called.append(t) or torch.full_like(x0, 0.5)  # noqa: E731
    sample(GaussianOracle(sch), sch, torch.tensor([0, 1]), 3, 2, sampler, 10, guidance=hook,
           diagnostics=diag, shift_schedule="noise")  # fmt: skip
    assert called == [t for t, w in zip(grid, noise, strict=True) if w > 0]
    assert diag[-1]["shift_rms"] == 0 == diag[-1]["weight"]
    for row, w in zip(diag, noise, strict=True):
        assert row["weight"] == w and row["shift_rms"] == pytest.approx(0.5 * w, rel=1e-6)


def test_guided_steps_leave_out_the_smallest_moves_anywhere_in_the_run():
    from tardiff.diffusion.steppers import guided_steps

    # a faded tail (noise schedule): the two last steps and nothing else fit in 5 %
    assert guided_steps([0.1, 1.0, 1.0, 0.05, 0.02], 0.05) == [True, True, True, False, False]
    # equal moves: the noisier (earlier) step goes first
    assert guided_steps([0.1, 0.1, 1.0], 0.1) == [False, True, True]
    assert guided_steps([0.1, 0.1, 1.0], 0.0) == [True, True, True]


def test_default_guidance_runs_at_the_three_steps_carrying_most_of_the_move():
    """The schema's defaults (cosine T=1000, DPM-Solver++ 12, noise schedule, skip share) guide 3
    consecutive middle steps that carry 65-75 % of the weighted move (schema description, docs)."""
    gen = schema()["properties"]["generation"]["properties"]
    sch = NoiseSchedule(cosine_betas(1000), "v")
    stepper = STEPPERS[gen["sampler"]["default"]](sch)
    grid = stepper.grid(gen["steps"]["default"])
    weights = shift_weights(sch, grid, gen["shift_schedule"]["default"])
    moves = [abs(c) * w for c, w in zip(stepper.x0_coefs(grid), weights, strict=True)]
    guided = guided_steps(moves, gen["guide_skip_share"]["default"])
    steps = [i for i, g in enumerate(guided) if g]
    assert len(grid) == 12 and steps == [4, 5, 6]
    assert 0.65 < sum(moves[i] for i in steps) / sum(moves) < 0.75
