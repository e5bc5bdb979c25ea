"""Fidelity metrics: discriminative and predictive scores, marginals and dynamics, plausibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tardiff.evaluate.quality import fidelity
from tardiff.evaluate.quality.fidelity import (
    Summary,
    _summary,
    discriminative_score,
    discriminative_scores,
    marginal_metrics,
    plausibility,
    predictive_score,
)
from tardiff.settings import EvaluationModelSettings, PredictorSettings

CPU = torch.device("cpu")
DISC = EvaluationModelSettings(
    arch="gru", hidden=8, layers=1, lr=0.01, weight_decay=0.0, batch_size=64, steps=150
)
PRED = PredictorSettings(hidden=8, lr=0.01, batch_size=64, steps=150)


def _gauss(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _ar1(n: int, length: int, d: int, phi: float, seed: int) -> np.ndarray:
    """Stationary AR(1) sequences with unit marginal variance."""
    eps = _gauss((n, length, d), seed) * np.sqrt(1 - phi**2)
    x = np.empty_like(eps)
    x[:, 0] = _gauss((n, d), seed + 1000)
    for t in range(1, length):
        x[:, t] = phi * x[:, t - 1] + eps[:, t]
    return x


def _values(records: list[dict], metric: str) -> dict[str, float]:
    return {r["feature"]: r["value"] for r in records if r["metric"] == metric}


def _marginals(real: np.ndarray, synthetic: np.ndarray, **kw) -> list[dict]:
    features = [f"f{j}" for j in range(real.shape[2])]
    return marginal_metrics(real, synthetic, real, synthetic, features, **kw)


# --- discriminative score ---------------------------------------------------------------------


def test_discriminative_score_same_distribution_is_near_chance():
    out = discriminative_score(
        _gauss((400, 8, 3), 0), _gauss((400, 8, 3), 1), DISC, 3, 0, device=CPU
    )
    assert set(out) == {"disc_score", "disc_auroc"}
    auc, score = out["disc_auroc"], out["disc_score"]
    assert auc.runs == score.runs == 3
    assert abs(auc.mean - 0.5) < 0.1 and score.mean < 0.1
    assert auc.low <= auc.mean <= auc.high and score.low <= score.mean <= score.high


def test_discriminative_score_shifted_distribution_is_separable():
    real, synthetic = _gauss((400, 8, 3), 0), _gauss((300, 8, 3), 1) + 2
    out = discriminative_score(real, synthetic, DISC, 3, 0, device=CPU)
    assert out["disc_auroc"].mean > 0.9 and out["disc_score"].mean > 0.4


def test_discriminative_scores_of_several_sets_equal_one_call_per_set(monkeypatch):
    real = _gauss((60, 8, 3), 0)
    sets = [_gauss((50, 8, 3), 1) + 0.5, _gauss((70, 8, 3), 2), _gauss((40, 8, 3), 3) - 1]
    alone = [
        discriminative_score(real, x, DISC, 2, s, device=CPU)
        for x, s in zip(sets, (4, 5, 6), strict=True)
    ]
    for pool_mb in (1e-3, 256):  # one set per call, then all three in one call
        monkeypatch.setattr(fidelity, "POOL_MB", pool_mb)
        together = discriminative_scores(real, sets, [4, 5, 6], DISC, 2, device=CPU)
        for a, b in zip(alone, together, strict=True):
            for name in ("disc_score", "disc_auroc"):
                assert b[name].mean == pytest.approx(a[name].mean, abs=1e-6)
                assert b[name].runs == a[name].runs == 2


def test_summary_is_the_t_interval_over_runs():
    values = [0.1, 0.3, 0.2, 0.6]
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    got = _summary("x", values)
    assert got.runs == 4 and got.mean == pytest.approx(0.3)
    assert (got.low, got.high) == pytest.approx((low, high))
    assert _summary("x", [0.25]) == Summary(0.25, 0.25, 0.25, 1)
    wide = _summary("x", [0.1, 0.9], (0.0, 1.0))  # the t-interval of two runs, clipped
    assert (wide.mean, wide.low, wide.high) == (0.5, 0.0, 1.0)
    with pytest.raises(ValueError, match="x is not finite"):
        _summary("x", [np.nan, 1.0])


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"runs": 0}, "runs >= 1"),
        ({"settings": EvaluationModelSettings("tcn", 8, 1, 0.01, 0.0, 64, 10)}, "GRU"),
        ({"synthetic": _gauss((4, 8, 3), 1)}, ">= 5 sequences"),
        ({"synthetic": _gauss((20, 8, 2), 1)}, r"\(L, D\)"),
    ],
)
def test_discriminative_score_rejects_bad_input(changes, match):
    args = {"real": _gauss((20, 8, 3), 0), "synthetic": _gauss((20, 8, 3), 1)}
    args |= {"settings": DISC, "runs": 2, "seed": 0} | changes
    with pytest.raises(ValueError, match=match):
        discriminative_score(**args, device=CPU)


# --- predictive score -------------------------------------------------------------------------


def test_predictive_score_prefers_the_same_process_and_is_deterministic():
    test = _ar1(200, 16, 2, 0.9, seed=0)
    same = predictive_score(_ar1(300, 16, 2, 0.9, seed=1), test, PRED, 0, device=CPU)
    noise = predictive_score(_gauss((300, 16, 2), 2), test, PRED, 0, device=CPU)
    assert same < 0.8 * noise
    assert predictive_score(_ar1(300, 16, 2, 0.9, seed=1), test, PRED, 0, device=CPU) == same
    assert predictive_score(_ar1(300, 16, 2, 0.9, seed=1), test, PRED, 1, device=CPU) != same


def test_predictive_score_needs_two_steps():
    with pytest.raises(ValueError, match="2 time steps"):
        predictive_score(_gauss((10, 1, 2), 0), _gauss((10, 1, 2), 1), PRED, 0, device=CPU)


# --- marginals and dynamics -------------------------------------------------------------------


def test_wasserstein_of_a_shift_is_the_shift():
    real = _gauss((2000, 6, 2), 0)
    exact = _marginals(real, real + np.float32(0.75))  # a pure shift: W1 = 0.75 exactly
    assert _values(exact, "wasserstein") == pytest.approx({"f0": 0.75, "f1": 0.75}, abs=1e-5)
    assert _values(exact, "wasserstein_step") == pytest.approx({"f0": 0.75, "f1": 0.75}, abs=1e-5)
    drawn = _marginals(real, _gauss((2000, 6, 2), 1) + np.float32(0.75))
    assert _values(drawn, "wasserstein") == pytest.approx({"f0": 0.75, "f1": 0.75}, abs=0.05)
    assert _values(drawn, "wasserstein_step") == pytest.approx({"f0": 0.75, "f1": 0.75}, abs=0.05)


def test_sd_ratio_is_the_spread_of_synthetic_over_real():
    real = _gauss((500, 6, 2), 0)
    out = _marginals(real, 0.8 * real + np.float32(3.0))  # affine: exactly 0.8, shift-free
    assert _values(out, "sd_ratio") == pytest.approx({"f0": 0.8, "f1": 0.8}, rel=1e-5)
    narrow = real.copy()
    narrow[..., 1] *= 0.5
    assert _values(_marginals(real, narrow), "sd_ratio_min") == pytest.approx({"all": 0.5})
    drawn = _marginals(real, 1.2 * _gauss((500, 6, 2), 1))
    assert _values(drawn, "sd_ratio") == pytest.approx({"f0": 1.2, "f1": 1.2}, rel=0.05)


def test_wasserstein_uses_physical_units():
    real, synthetic = _gauss((200, 4, 1), 0), _gauss((200, 4, 1), 1)
    out = marginal_metrics(real * 10, (synthetic + 1) * 10, real, synthetic + 1, ["hr"])
    assert _values(out, "wasserstein")["hr"] == pytest.approx(10, abs=1.0)


def test_lag1_autocorrelation_difference():
    ar, noise = _ar1(200, 400, 1, 0.8, seed=0), _gauss((200, 400, 1), 1)
    assert _values(_marginals(ar, ar), "autocorr_lag1_diff") == {"f0": 0.0}
    assert _values(_marginals(noise, ar), "autocorr_lag1_diff")["f0"] == pytest.approx(
        0.8, abs=0.03
    )
    constant = np.full_like(ar, 3.0)  # zero variance: autocorrelation 0
    constant[1::2] = 5.0
    assert _values(_marginals(constant, ar), "autocorr_lag1_diff")["f0"] == pytest.approx(
        0.8, abs=0.03
    )


def test_cross_correlation_difference():
    rho = 0.6
    z = _gauss((300, 50, 2), 0)
    correlated = z.copy()
    correlated[..., 1] = rho * z[..., 0] + np.sqrt(1 - rho**2) * z[..., 1]
    independent = _gauss((300, 50, 2), 1)
    assert _values(_marginals(correlated, correlated), "crosscorr_diff") == {"all": 0.0}
    got = _values(_marginals(correlated, independent), "crosscorr_diff")["all"]
    assert got == pytest.approx(rho, abs=0.03)
    assert "crosscorr_diff" not in {r["metric"] for r in _marginals(z[..., :1], z[..., :1])}


def test_cross_correlation_difference_sums_over_pairs():
    real, synthetic = _gauss((40, 5, 4), 0), _gauss((30, 5, 4), 1)
    real[..., 2] += real[..., 0]
    synthetic[..., 3] -= synthetic[..., 1]
    c_r, c_s = (np.corrcoef(a.reshape(-1, 4), rowvar=False) for a in (real, synthetic))
    expected = np.abs(c_s - c_r)[np.triu_indices(4, 1)].sum()
    got = _values(_marginals(real, synthetic), "crosscorr_diff")["all"]
    assert got == pytest.approx(expected, rel=1e-9)


def _mmd_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² by its definition, looping over pairs."""
    x, y = x.reshape(len(x), -1).astype(float), y.reshape(len(y), -1).astype(float)
    pooled = np.concatenate([x, y])
    pairs = [np.linalg.norm(a - b) for i, a in enumerate(pooled) for b in pooled[i + 1 :]]
    sigma = np.median(pairs)

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))

    n, m = len(x), len(y)
    kxx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(a, b) for a in x for b in y) / (n * m)
    return kxx + kyy - 2 * kxy


def test_mmd():
    x, y = _gauss((12, 3, 2), 0), _gauss((9, 3, 2), 1) + 0.5
    assert _values(_marginals(x, y), "mmd")["all"] == pytest.approx(_mmd_reference(x, y))
    real, same, shifted = _gauss((300, 5, 2), 2), _gauss((300, 5, 2), 3), _gauss((300, 5, 2), 4)
    assert abs(_values(_marginals(real, real), "mmd")["all"]) < 0.01
    assert abs(_values(_marginals(real, same), "mmd")["all"]) < 0.01
    assert _values(_marginals(real, shifted + 1), "mmd")["all"] > 0.1
    sub = _marginals(real, shifted + 1, max_mmd_samples=50, seed=1)
    assert _values(sub, "mmd")["all"] > 0.1
    assert _values(sub, "mmd") != _values(_marginals(real, shifted + 1), "mmd")


def test_marginal_metrics_records_and_bad_input():
    real, synthetic = _gauss((20, 4, 2), 0), _gauss((30, 4, 2), 1)
    out = _marginals(real, synthetic)
    assert [(r["metric"], r["feature"]) for r in out] == [
        *[(m, f) for m in ("wasserstein", "wasserstein_step", "sd_ratio") for f in ["f0", "f1"]],
        ("sd_ratio_min", "all"),
        ("autocorr_lag1_diff", "f0"),
        ("autocorr_lag1_diff", "f1"),
        ("crosscorr_diff", "all"),
        ("mmd", "all"),
    ]
    with pytest.raises(ValueError, match="feature names"):
        marginal_metrics(real, synthetic, real, synthetic, ["hr"])
    with pytest.raises(ValueError, match="non-finite"):
        bad = synthetic.copy()
        bad[0, 0, 0] = np.nan
        _marginals(real, bad)
    with pytest.raises(ValueError, match="agree"):
        marginal_metrics(real, synthetic, real[:10], synthetic, ["f0", "f1"])


# --- plausibility -----------------------------------------------------------------------------


def test_plausibility_counts_out_of_range_values_and_bp_order():
    features = ["hr", "sbp", "mbp", "dbp"]
    x = np.empty((10, 5, 4), np.float32)
    x[...] = [80, 120, 90, 60]
    x[0, 0, 0], x[3, 2, 0], x[9, 4, 0] = 350, -1, 300  # hr valid [0, 300]: 2 outside
    x[1, 1, 1] = 85  # sbp < mbp
    x[2, 3, 3] = 95  # dbp > mbp
    x[4, 4, 1] = x[4, 4, 3] = 90  # sbp = mbp = dbp: plausible
    out = plausibility(x, features)
    assert _values(out, "out_of_range") == {
        "hr": 2 / 50,
        "sbp": 0,
        "mbp": 0,
        "dbp": 0,
        "all": 2 / 200,
    }
    assert _values(out, "bp_order_violation") == {"all": 2 / 50}
    assert "bp_order_violation" not in {r["metric"] for r in plausibility(x[..., :2], features[:2])}


def test_plausibility_on_yaib_feature_names():
    """ricu names: aliases take the project's range (map = mbp), the others ricu's limits."""
    features = ["hr", "sbp", "map", "dbp", "o2sat", "resp", "glu", "na", "lact", "fio2", "crea"]
    x = np.empty((4, 3, len(features)), np.float32)
    x[...] = [80, 120, 90, 60, 97, 16, 110, 140, 1.5, 40, 1.0]
    x[0, 0, 2] = 301  # map above mbp's 300 (and above sbp: a BP order violation)
    x[1, 1, 7] = 100  # sodium below ricu's 110
    x[2, 2, 9] = 20  # FiO2 below room air (21 %)
    out = _values(plausibility(x, features), "out_of_range")
    assert out == {**dict.fromkeys(features, 0.0), "map": 1 / 12, "na": 1 / 12, "fio2": 1 / 12,
                   "all": 3 / (12 * len(features))}  # fmt: skip
    assert _values(plausibility(x, features), "bp_order_violation") == {"all": 1 / 12}


def test_plausibility_reports_a_feature_without_a_range_and_does_not_fail(caplog):
    x = np.full((4, 3, 2), 5.0, np.float32)
    x[0, 0, 0] = -1  # hr < 0
    out = plausibility(x, ["hr", "inr_pt"])
    assert _values(out, "out_of_range") == {"hr": 1 / 12, "all": 1 / 12}
    assert "no plausible range known for ['inr_pt']" in caplog.text
    assert plausibility(x, ["mystery", "inr_pt"]) == []
