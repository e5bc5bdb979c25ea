"""How learnable are the demo labels? Logistic regression on 24 h grid summaries.

Generates the embedded demo (raw MIMIC-III / eICU tables), extracts the cohort with
``tardiff.extract.build_cohort`` and fits a logistic regression on per-feature summaries
(mean, min, max, last, slope of the forward-filled grid) for every task. Prints test AUROC/AUPRC
and 5-fold cross-validated figures (steadier at a few thousand stays). ``--simulator`` skips the
raw tables and uses the simulator's noise-free grids instead.

    python benchmarks/demo_auroc.py --n-stays 3000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tardiff.config import load_config
from tardiff.demo import simulator as sim
from tardiff.demo import write_demo
from tardiff.layout import CohortFiles
from tardiff.settings import DatasetSettings, SplitSettings

ROOT = Path(__file__).resolve().parents[1]


def summaries(grid: np.ndarray) -> np.ndarray:
    """[n, T, F] grid (NaN = missing) → [n, 5F] mean, min, max, last, slope after forward fill."""
    x = pd.DataFrame(grid.transpose(1, 0, 2).reshape(grid.shape[1], -1)).ffill().to_numpy()
    x = x.reshape(grid.shape[1], grid.shape[0], grid.shape[2]).transpose(1, 0, 2)
    t = np.arange(x.shape[1]) - (x.shape[1] - 1) / 2
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=1)
        slope = np.nansum((x - mean[:, None]) * t[None, :, None], axis=1) / (t**2).sum()
        feats = np.concatenate([mean, np.nanmin(x, 1), np.nanmax(x, 1), x[:, -1], slope], 1)
    return feats


def evaluate(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    """Test and 5-fold CV AUROC/AUPRC of a standardised logistic regression (NaN → train mean)."""
    fill = np.nanmean(x[train], axis=0)
    x = np.where(np.isnan(x), fill, x)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    p = model.fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    cv = cross_val_predict(
        model, x, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba"
    )[:, 1]
    return {
        "prevalence": y.mean(),
        "test_auroc": roc_auc_score(y[test], p),
        "test_auprc": average_precision_score(y[test], p),
        "cv_auroc": roc_auc_score(y, cv),
        "cv_auprc": average_precision_score(y, cv),
    }


def from_extraction(name: str, config: dict, n_stays: int, work: Path):
    """Demo → ``build_cohort`` → (grid, labels per task, train mask, test mask)."""
    from tardiff.extract import build_cohort

    entry = DatasetSettings.from_config(config["datasets"][name])
    raw, out = work / name / "raw", CohortFiles.in_dir(work / name / "cohort")
    split_settings = SplitSettings.from_config(config["split"])
    start = time.perf_counter()
    demo = write_demo(entry.source, raw, n_stays, config["seed"])
    cohort = build_cohort(entry, raw, out, split_settings, config["seed"])
    print(
        f"{name}: demo {demo['wall_s']:.1f} s, extraction {time.perf_counter() - start:.1f} s "
        f"total, {cohort['n_stays']} stays"
    )
    stays = pd.read_parquet(out.stays).sort_values("stay_id")
    ts = pd.read_parquet(out.timeseries).sort_values(["stay_id", "step"])
    grid = ts[list(entry.features)].to_numpy(float).reshape(len(stays), entry.steps, -1)
    labels = {task: stays[task].to_numpy() for task in entry.tasks}
    split = stays["split"].to_numpy()
    return grid, labels, split == "train", split == "test"


def from_simulator(name: str, config: dict, n_stays: int):
    """Noise-free simulator grids of the dataset's features, 80/20 split."""
    entry = config["datasets"][name]
    grids, mort, los = [], [], []
    for batch in sim.simulate(entry["source"], n_stays, config["seed"]):
        grids.append(
            sim.grid(batch, entry["hours"], entry["resolution_minutes"], entry["features"])
        )
        mort.append(batch.label)
        los.append(batch.los_h / 24 > entry["tasks"].get("icu_stay", {}).get("threshold_days", 3))
    grid = np.concatenate(grids)
    train = np.random.default_rng(0).random(len(grid)) < 0.8
    labels = {
        "mortality": np.concatenate(mort).astype(int),
        "icu_stay": np.concatenate(los).astype(int),
    }
    return grid, {t: labels[t] for t in entry["tasks"]}, train, ~train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    parser.add_argument("--n-stays", type=int, default=3000)
    parser.add_argument("--simulator", action="store_true", help="skip raw tables/extraction")
    parser.add_argument("--work", default=None, help="folder for raw tables and cohorts")
    args = parser.parse_args()
    config = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for name, entry in config["datasets"].items():
            if entry["source"] not in sim.SOURCES:
                continue
            if args.simulator:
                grid, labels, train, test = from_simulator(name, config, args.n_stays)
            else:
                grid, labels, train, test = from_extraction(name, config, args.n_stays, work)
            x = summaries(grid)
            for task, y in labels.items():
                r = evaluate(x, y, train, test)
                print(
                    f"  {name:12s} {task:10s} prevalence {r['prevalence']:.3f}  "
                    f"test AUROC {r['test_auroc']:.3f} AUPRC {r['test_auprc']:.3f}  "
                    f"5-fold AUROC {r['cv_auroc']:.3f} AUPRC {r['cv_auprc']:.3f}"
                )


if __name__ == "__main__":
    main()
