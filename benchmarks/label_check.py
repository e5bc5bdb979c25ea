"""Label fidelity, range and influence of every generated scale of a finished run (issue 18).

For every (dataset, task) of the config's main study and every scale of each guided method's grid
(scale 0 = the conditional draw), over the selection seeds (`evaluation.selection_seeds`: the
seeds drawn at every scale) of the run's generated sets:

- ``own_0`` / ``own_1``: the label judge's own-label share per class (the fidelity stage's judge:
  ``fidelity.judge`` recipe, trained on real train, threshold on validation ``select``), in %;
- ``out_of_range``: share of values outside the variables' valid ranges, in %;
- ``influence_0`` / ``influence_1``: mean sample influence G·∇φℓ by class (from ``seed<k>.json``);
- the deltas against the conditional draw and the issue's criteria: each class's own-label share
  within 5 points of conditional's, the out-of-range share at most conditional's + 1 point, and
  tardiff's mean sample influence above conditional's in both classes.

Reads generated sets, the cohort's train and ``select`` splits; never the test split.

    python benchmarks/label_check.py [--config config/config.yaml] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tardiff.config import load_config
from tardiff.data import prepare
from tardiff.evaluate.downstream.sets import load_draw
from tardiff.evaluate.quality.fidelity import plausibility
from tardiff.evaluate.quality.label_fidelity import train_judge
from tardiff.io import read_json, write_csv
from tardiff.layout import Layout
from tardiff.methods import scale_guided
from tardiff.settings import JudgeSettings, ScaleGrids

#: the issue's bounds: own-label share within this many points, out of range at most + this
LABEL_POINTS, RANGE_POINTS = 5.0, 1.0


def _out_of_range(prep, x: np.ndarray) -> float:
    records = plausibility(prep.transform.inverse(x), prep.features)
    return next(
        r["value"] for r in records if r["metric"] == "out_of_range" and r["feature"] == "all"
    )


def _rows(layout: Layout, config: dict, dataset: str, task: str) -> list[dict]:
    """One row per (method, scale, seed) of a pair."""
    cohort = layout.cohort(dataset)
    prep = prepare(cohort.stays, cohort.timeseries, task, ("train", "select"))
    judge = train_judge(prep, JudgeSettings.from_config(config["fidelity"]["judge"]),
                        config["seed"], torch.device("cpu"))  # fmt: skip
    grids = ScaleGrids.from_config(config["generation"]["scales"])
    methods = [m for m in config["generation"]["methods"] if scale_guided(m)]
    keys = [("conditional", 0.0)] + [(m, float(w)) for m in methods for w in grids.of(m)]
    rows = []
    for method, scale in keys:
        for seed in range(config["evaluation"]["selection_seeds"]):  # every grid scale
            files = layout.synthetic(dataset, task, method, scale, seed)
            draw = load_draw(
                files.samples, (method, scale, seed), prep.transform, task, prep.seq_len
            )
            own = judge.own_label_share(draw.x, draw.y)
            influence = read_json(files.settings)["mean_sample_influence"]
            rows.append({"dataset": dataset, "task": task, "method": method, "scale": scale,
                         "seed": seed, "own_0": 100 * own[0], "own_1": 100 * own[1],
                         "out_of_range": 100 * _out_of_range(prep, draw.x),
                         "influence_0": influence["0"], "influence_1": influence["1"]})  # fmt: skip
    return rows


def check(table: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds, deltas against the pair's conditional draw and the issue's criteria."""
    means = table.groupby(["dataset", "task", "method", "scale"], sort=False).mean().drop(
        columns="seed").reset_index()  # fmt: skip
    base = means[means["method"] == "conditional"].set_index(["dataset", "task"])
    ref = base.loc[list(zip(means["dataset"], means["task"], strict=True))].reset_index(drop=True)
    for col in ("own_0", "own_1", "out_of_range", "influence_0", "influence_1"):
        means[f"d_{col}"] = means[col] - ref[col]
    means["label_ok"] = (means[["d_own_0", "d_own_1"]].abs() <= LABEL_POINTS).all(axis=1)
    means["range_ok"] = means["d_out_of_range"] <= RANGE_POINTS
    means["influence_up"] = (means[["d_influence_0", "d_influence_1"]] > 0).all(axis=1)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--out", default="benchmarks/out/label_check")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    config = load_config(args.config)
    layout = Layout.from_config(config)
    pairs = [(d, t) for d, entry in config["datasets"].items() for t in entry["tasks"]]
    table = pd.DataFrame([row for d, t in pairs for row in _rows(layout, config, d, t)])
    result = check(table)
    write_csv(table, Path(args.out) / "per_seed.csv")
    write_csv(result, Path(args.out) / "label_check.csv")
    shown = result.drop(columns=["d_influence_0", "d_influence_1", "d_out_of_range"])
    print(shown.to_markdown(index=False, floatfmt=".2f"))
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
