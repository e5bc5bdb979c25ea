"""Seeded ICU patient simulator: latent acuity, deterioration, vitals at 5-minute steps, labels.

Recipe of ``simulator-calibration.md``: per stay a latent acuity ``s ~ N(0, 1)``, a deteriorating
flag ``d ~ Bernoulli(σ(−2.2 + 0.9 s))`` with an onset and a ramp duration, an ICU length of stay
depending on both, and per variable a baseline shifted by acuity plus between-stay noise with an
AR(1) path around it (lag-1 autocorrelations and within-stay SDs of the real hourly grids). After
onset the ramp raises HR and RR and lowers BP and SpO2; hypotension episodes come on top. The
mortality label is drawn from the trajectory: ``y ~ Bernoulli(σ(a + s + 1.5 d + hypotension and
tachycardia hours))`` with the intercept ``a`` calibrated offline (:func:`calibrate_intercept`).

Stays are simulated in fixed-size batches, each from its own seeded generator, so a population of
any size streams in bounded memory and stay ``i`` is the same whatever the population size.
Time series of a batch are flat arrays (stay-major) at 5-minute steps covering the whole stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

STEPS_PER_HOUR = 12  # 5-minute base resolution
BATCH = 500
VITALS = ("hr", "sbp", "dbp", "mbp", "rr", "temp", "spo2")
SOURCES = {"mimic3": 1, "eicu": 2}

#: Intercept ``a`` per source, from ``calibrate_intercept(source, target)`` on 20,000 stays
#: (seed 0): prevalence 8 % (MIMIC-III) and 10 % (eICU).
INTERCEPT = {"mimic3": -6.35, "eicu": -5.81}
TARGET_PREVALENCE = {"mimic3": 0.08, "eicu": 0.10}
#: Fraction of stays with an arterial line (before the acuity shift).
ARTERIAL = {"mimic3": 0.45, "eicu": 0.30}

#: Lab draws: (log median, acuity coef, ramp coef, between-stay SD, per-draw SD) on the log scale.
LABS: dict[str, tuple[float, float, float, float, float]] = {
    "lactate": (np.log(1.6), 0.25, 0.9, 0.25, 0.25),
    "creatinine": (np.log(1.0), 0.25, 0.35, 0.45, 0.08),
    "bun": (np.log(20.0), 0.25, 0.35, 0.45, 0.08),
    "glucose": (np.log(130.0), 0.08, 0.1, 0.2, 0.2),
    "potassium": (np.log(4.1), 0.02, 0.05, 0.08, 0.08),
    "sodium": (np.log(139.0), 0.0, 0.0, 0.02, 0.012),
    "bicarbonate": (np.log(24.0), -0.05, -0.2, 0.1, 0.06),
    "hemoglobin": (np.log(10.5), -0.04, -0.05, 0.15, 0.05),
    "wbc": (np.log(10.0), 0.15, 0.4, 0.35, 0.15),
    "platelets": (np.log(210.0), -0.1, -0.3, 0.45, 0.1),
    "bilirubin": (np.log(0.8), 0.2, 0.4, 0.8, 0.1),
    "ph": (np.log(7.39), -0.003, -0.012, 0.004, 0.004),
    "pco2": (np.log(40.0), 0.02, 0.0, 0.15, 0.1),
    "po2": (np.log(110.0), -0.05, -0.2, 0.3, 0.25),
}


@dataclass
class Batch:
    """A batch of simulated stays; ``series`` and ``ramp`` are flat arrays at 5-minute steps."""

    first: int  # population index of the first stay
    acuity: np.ndarray
    deteriorating: np.ndarray
    onset_h: np.ndarray
    los_h: np.ndarray
    arterial: np.ndarray
    intubated: np.ndarray
    logit: np.ndarray  # label logit without the intercept
    label: np.ndarray
    start: np.ndarray  # [n + 1] offsets of each stay in the flat arrays
    series: dict[str, np.ndarray]  # VITALS plus gcs, glucose, urine (mL/h)
    ramp: np.ndarray

    @property
    def n(self) -> int:
        return len(self.acuity)

    def index(self, stay: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """Flat indices of the steps nearest to ``hours`` after ICU admission in ``stay``."""
        last = self.start[stay + 1] - 1
        idx = self.start[stay] + np.rint(np.asarray(hours) * STEPS_PER_HOUR).astype(np.int64)
        return np.clip(idx, self.start[stay], last)


def simulate(
    source: str, n_stays: int, seed: int, intercept: float | None = None
) -> Iterator[Batch]:
    """Yield batches of simulated stays for ``source`` (``mimic3`` or ``eicu``)."""
    if source not in SOURCES:
        raise ValueError(f"unknown demo source {source!r}; expected one of {sorted(SOURCES)}")
    a = INTERCEPT[source] if intercept is None else intercept
    for first in range(0, n_stays, BATCH):
        rng = np.random.default_rng([seed, SOURCES[source], first // BATCH])
        yield _simulate_batch(rng, min(BATCH, n_stays - first), first, a, ARTERIAL[source])


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(c)`` for each count ``c``."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - offsets


def charting_rounds(rng: np.random.Generator, los: np.ndarray):
    """Nurse charting times (hours, whole minutes): hourly on the clock (a per-stay phase, as
    INTIME falls anywhere within a clock hour) with a few minutes' jitter, some skipped, and every
    15 min in the first 2 h. Returns stay index, hours and the hour number (−1 for the early ones).
    """
    hourly = np.floor(los).astype(int) + 1
    stay_h = np.repeat(np.arange(len(los)), hourly)
    hour = ragged_arange(hourly)
    phase = rng.uniform(0.05, 0.95, len(los))[stay_h]
    t_h = np.clip(hour + phase + rng.uniform(-0.05, 0.05, len(hour)), 0, los[stay_h])
    keep = rng.random(len(hour)) < 0.95
    dense = np.minimum(7, np.floor(los * 4).astype(int))
    stay_d = np.repeat(np.arange(len(los)), dense)
    t_d = 0.25 * (ragged_arange(dense) + 1) + rng.uniform(-0.03, 0.03, len(stay_d))
    stay = np.concatenate([stay_h[keep], stay_d])
    hours = np.concatenate([t_h[keep], t_d])
    hour_no = np.concatenate([hour[keep], np.full(len(stay_d), -1)])
    return stay, np.floor(hours * 60) / 60, hour_no


def lab_rounds(rng: np.random.Generator, los: np.ndarray):
    """Lab draw times (hours after ICU admission): every 6-24 h (a per-stay interval) from 6 h
    before admission plus up to 2 h. The last may fall after the stay. Returns stay index, hours.
    """
    every = rng.uniform(6, 24, len(los))
    count = np.floor((los + 6) / every).astype(int) + 1
    stay = np.repeat(np.arange(len(los)), count)
    hours = -6 + rng.uniform(0, 2, len(los))[stay] + ragged_arange(count) * every[stay]
    return stay, hours


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _simulate_batch(
    rng: np.random.Generator, n: int, first: int, intercept: float, arterial: float
) -> Batch:
    s = rng.standard_normal(n)
    d = rng.random(n) < _sigmoid(-2.2 + 0.9 * s)
    los_h = np.exp(np.log(50.0) + 0.35 * s + 0.45 * d + 0.75 * rng.standard_normal(n))
    los_h = np.clip(los_h, 4.0, 720.0)
    onset_h = -12.0 + rng.random(n) * (np.minimum(los_h, 72.0) + 12.0)
    ramp_h = rng.uniform(6.0, 36.0, n)
    art = rng.random(n) < _sigmoid(np.log(arterial / (1 - arterial)) + 0.5 * s)
    intub = rng.random(n) < _sigmoid(-1.0 + 0.8 * s)

    steps = np.floor(los_h * STEPS_PER_HOUR).astype(np.int64) + 1
    start = np.concatenate([[0], np.cumsum(steps)])
    sid = np.repeat(np.arange(n), steps)
    k = ragged_arange(steps)
    t = k / STEPS_PER_HOUR
    ramp = np.clip((t - onset_h[sid]) / ramp_h[sid], 0.0, 1.0) * d[sid]
    hypo = _episodes(rng, s, d, onset_h, los_h, start)

    def path(rho: float, sd: float) -> np.ndarray:
        return _ar1(rng, start, sid, k, rho, sd)

    def stay(sd: float) -> np.ndarray:
        return sd * rng.standard_normal(n)[sid]

    def noise(sd: float) -> np.ndarray:
        return sd * rng.standard_normal(len(sid))

    sa = s[sid]
    temp = 36.83 - 0.2 * sa + stay(0.55) + path(0.80, 0.33) - 0.5 * ramp + noise(0.05)
    hr = 85.0 + 5.0 * sa + stay(15.0) + path(0.75, 7.0) + 9.0 * (temp - 36.83)
    hr += 14.0 * ramp + 0.4 * hypo + noise(2.0)
    mbp = 81.0 - 2.5 * sa + stay(11.5) + path(0.41, 10.0) - 5.0 * ramp - hypo + noise(1.5)
    pp = 55.0 - 4.0 * sa + stay(9.0) + path(0.50, 7.5) - 5.0 * ramp - 0.3 * hypo
    pp = np.maximum(pp, 15.0)
    mbp = np.maximum(mbp, 25.0)
    rr = 19.6 + 1.5 * sa + stay(4.5) + path(0.53, 2.7) + 4.0 * ramp + noise(1.2)
    deficit = np.exp(np.log(2.6) + 0.08 * sa + stay(0.4) + path(0.51, 0.5)) * (1 + 1.0 * ramp)
    gcs = 14.0 - 1.2 * sa - 3.0 * ramp - 4.0 * intub[sid] + stay(2.0) + path(0.9, 1.2)
    glucose = 135.0 + 10.0 * sa + stay(30.0) + path(0.85, 18.0)
    urine = np.exp(np.log(70.0) - 0.25 * sa - 0.6 * ramp + stay(0.35) + path(0.6, 0.5))
    series = {
        "hr": np.clip(hr, 20.0, 250.0),
        "sbp": mbp + 2.0 * pp / 3.0,
        "dbp": mbp - pp / 3.0,
        "mbp": mbp,
        "rr": np.clip(rr, 4.0, 60.0),
        "temp": np.clip(temp, 32.0, 42.0),
        "spo2": np.clip(100.0 - deficit, 55.0, 100.0),
        "gcs": np.clip(gcs, 3.0, 15.0),
        "glucose": np.clip(glucose, 40.0, 600.0),
        "urine": urine,
    }

    logit = s + 1.5 * d + _trajectory_terms(series, start, sid, k, n)
    label = rng.random(n) < _sigmoid(intercept + logit)
    return Batch(first, s, d, onset_h, los_h, art, intub, logit, label, start, series, ramp)


def _ar1(
    rng: np.random.Generator,
    start: np.ndarray,
    sid: np.ndarray,
    k: np.ndarray,
    rho_hour: float,
    sd: float,
) -> np.ndarray:
    """Stationary AR(1) paths (SD ``sd``, hourly lag-1 autocorrelation ``rho_hour``) per stay.

    One ``lfilter`` over the flat array; the carry-over from the previous stay, ``φ^(k+1)`` times
    its last value, is subtracted so that every stay starts afresh.
    """
    phi = rho_hour ** (1.0 / STEPS_PER_HOUR)
    e = rng.standard_normal(len(sid)) * (sd * np.sqrt(1.0 - phi**2))
    e[start[:-1]] /= np.sqrt(1.0 - phi**2)
    y = lfilter([1.0], [1.0, -phi], e)
    prev = np.zeros(len(start) - 1)
    prev[1:] = y[start[1:-1] - 1]
    return y - phi ** (k + 1.0) * prev[sid]


def _episodes(
    rng: np.random.Generator,
    s: np.ndarray,
    d: np.ndarray,
    onset_h: np.ndarray,
    los_h: np.ndarray,
    start: np.ndarray,
) -> np.ndarray:
    """MAP drop (mmHg, flat) from hypotension episodes of 45 min to 4 h, more after onset."""
    rate = 0.15 * np.exp(0.5 * s) + 0.9 * d  # per day
    count = rng.poisson(rate * los_h / 24.0)
    ep = np.repeat(np.arange(len(s)), count)
    lo = np.where(d[ep], np.clip(onset_h[ep], 0.0, los_h[ep]), 0.0)
    begin = lo + rng.random(len(ep)) * (los_h[ep] - lo)
    end = begin + rng.uniform(0.75, 4.0, len(ep))
    depth = rng.uniform(12.0, 28.0, len(ep))
    last = start[1:][ep]
    i0 = np.minimum(start[ep] + (begin * STEPS_PER_HOUR).astype(np.int64), last)
    i1 = np.minimum(start[ep] + (end * STEPS_PER_HOUR).astype(np.int64), last)
    diff = np.zeros(start[-1] + 1)
    np.add.at(diff, i0, depth)
    np.add.at(diff, i1, -depth)
    return np.cumsum(diff[:-1])


def _trajectory_terms(
    series: dict[str, np.ndarray], start: np.ndarray, sid: np.ndarray, k: np.ndarray, n: int
) -> np.ndarray:
    """Label terms from the whole stay: square roots of the (capped) hours with mean MAP < 65,
    mean HR > 110 and mean SpO2 < 92."""
    hours = (np.diff(start) + STEPS_PER_HOUR - 1) // STEPS_PER_HOUR
    first_bin = np.concatenate([[0], np.cumsum(hours)])
    b = first_bin[sid] + k // STEPS_PER_HOUR
    size = np.bincount(b)
    bin_stay = np.repeat(np.arange(n), hours)
    hypo = np.bincount(b, series["mbp"]) / size < 65.0
    tachy = np.bincount(b, series["hr"]) / size > 110.0
    hypox = np.bincount(b, series["spo2"]) / size < 92.0
    h_hypo = np.minimum(np.bincount(bin_stay, hypo, minlength=n), 48.0)
    h_tachy = np.minimum(np.bincount(bin_stay, tachy, minlength=n), 72.0)
    h_hypox = np.minimum(np.bincount(bin_stay, hypox, minlength=n), 48.0)
    return 0.35 * np.sqrt(h_hypo) + 0.4 * np.sqrt(h_tachy) + 0.25 * np.sqrt(h_hypox)


def lab_values(batch: Batch, rng: np.random.Generator, stay: np.ndarray, hours: np.ndarray):
    """Lab results for draws at ``hours`` after ICU admission (negative: before) of ``stay``.

    Returns ``{lab: values}`` in the units of :data:`LABS` (mmol/L, mg/dL, g/dL, K/uL, mmHg).
    """
    ramp = np.where(hours < 0, 0.0, batch.ramp[batch.index(stay, np.maximum(hours, 0.0))])
    s = batch.acuity[stay]
    out = {}
    for name, (mu, cs, cr, sd_stay, sd_draw) in LABS.items():
        z = rng.standard_normal(batch.n)[stay]
        out[name] = np.exp(
            mu + cs * s + cr * ramp + sd_stay * z + sd_draw * rng.standard_normal(len(stay))
        )
    return out


def grid(batch: Batch, hours: int = 24, resolution_minutes: int = 60, names=VITALS) -> np.ndarray:
    """Noise-free reference grid ``[n, T, F]``: means of the 5-minute values per grid step.

    Steps after the end of a stay are NaN. Used to calibrate the simulator without extraction.
    """
    per = resolution_minutes // 5
    n_steps = hours * 60 // resolution_minutes
    out = np.full((batch.n, n_steps, len(names)), np.nan)
    for i in range(batch.n):
        a, b = batch.start[i], batch.start[i + 1]
        m = min(b - a, n_steps * per) // per
        for f, name in enumerate(names):
            out[i, :m, f] = batch.series[name][a : a + m * per].reshape(m, per).mean(axis=1)
    return out


def calibrate_intercept(source: str, target: float, n_stays: int = 40_000, seed: int = 0) -> float:
    """Intercept ``a`` whose expected prevalence on a simulated population equals ``target``.

    Deterministic bisection on ``mean σ(a + logit) = target``; used offline to set
    :data:`INTERCEPT`.
    """
    logit = np.concatenate([b.logit for b in simulate(source, n_stays, seed, intercept=0.0)])
    lo, hi = -20.0, 10.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if _sigmoid(mid + logit).mean() < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
