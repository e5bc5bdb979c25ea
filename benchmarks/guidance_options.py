"""TarDiff guidance options on one (dataset, task): label fidelity, range, utility, realism.

For each option (the loss of G and s, the label-preserving transform, the shift schedule) and
each scale of tardiff's grid, draws ``|real train|`` samples at the train class ratio with the
trained diffusion model and guidance classifier of a finished run, and reports per draw:

- ``own_0`` / ``own_1``: the independent judge's own-label share per class
  (:mod:`tardiff.evaluate.quality.label_fidelity`, trained on real train, threshold on ``select``);
  ``clf_own_0`` / ``clf_own_1``: the same share by the guidance classifier (logit > 0);
- ``out_of_range``: the share of values outside the variables' valid ranges (physical units);
- ``influence_0`` / ``influence_1``: mean sample influence G·∇φℓ by class, with the *training*
  loss's G for every option (the quantity the guidance is meant to raise);
- ``tstr_auprc`` / ``tsrtr_auprc``: AUPRC on validation ``select`` of evaluation models (the
  harness recipe) trained on the draw alone / on real train plus the draw (α = 1), mean over
  ``--seeds`` model seeds;
- ``disc_auroc``: real-vs-synthetic discriminator AUROC (the fidelity stage's, 3 runs);
- ``move_rms``: RMS per element of the final samples minus the conditional draw of the same
  seed (z-units): what w does to the sample, against the per-step RMS bound w of the shift.

The test split is never read. Row ``conditional`` is w = 0 (no guidance). Each option's G is
built on the guide part with its loss; one diffusion seed per draw (the same for every option,
so the draws differ by the guidance alone).

    python benchmarks/guidance_options.py --results results --dataset mimic3_demo \
        --task mortality [--config config/config.yaml] [--options ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tardiff.config import load_config
from tardiff.data import prepare, sample_labels
from tardiff.diffusion.samplers import generate
from tardiff.diffusion.train import load_diffusion
from tardiff.evaluate.downstream.ensemble import train_models
from tardiff.evaluate.downstream.metrics import average_precision
from tardiff.evaluate.quality.fidelity import discriminative_score, plausibility
from tardiff.evaluate.quality.label_fidelity import train_judge
from tardiff.generate import own_label_share, reference_batch
from tardiff.guidance.hook import Guidance
from tardiff.guidance.influence import influence_vector
from tardiff.guidance.per_sample import loss_for
from tardiff.guidance.terms import sample_influence
from tardiff.io import write_csv
from tardiff.layout import Layout
from tardiff.models.train_classifier import load_classifier
from tardiff.settings import (
    EvaluationModelSettings,
    GenerationSettings,
    JudgeSettings,
)

#: option -> (loss of G and s, preserve, shift_schedule)
OPTIONS = {
    "paper (bce, constant)": ("bce", "none", "constant"),
    "training loss": ("training", "none", "constant"),
    "training, no_final": ("training", "none", "no_final"),
    "training, cutoff": ("training", "none", "cutoff"),
    "training, noise": ("training", "none", "noise"),
    "training, project": ("training", "project", "constant"),
    "training, project, cutoff": ("training", "project", "cutoff"),
    "training, project, noise": ("training", "project", "noise"),
}
#: the options of the default run's table (``--options`` default)
MAIN = ["paper (bce, constant)", "training loss", "training, noise", "training, project",
        "training, project, cutoff", "training, project, noise"]  # fmt: skip


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", default=None, help="results_dir of the run (default: config's)")
    p.add_argument("--dataset", default="mimic3_demo")
    p.add_argument("--task", default="mortality")
    p.add_argument("--config", default="config/config.yaml")
    p.add_argument("--options", nargs="*", default=MAIN, choices=list(OPTIONS))
    p.add_argument("--scales", nargs="*", type=float, default=None)
    p.add_argument("--seeds", type=int, default=2, help="evaluation model seeds")
    p.add_argument("--out", default="benchmarks/out/guidance_options")
    p.add_argument("--threads", type=int, default=1)
    return p.parse_args()


class Setup:
    """The run's models, data and fixed labels for one (dataset, task)."""

    def __init__(self, args, config: dict):
        layout = Layout(args.results or config["results_dir"])
        cohort, task = layout.cohort(args.dataset), args.task
        self.device = torch.device("cpu")
        self.prep = prepare(cohort.stays, cohort.timeseries, task, ("train", "guide", "select"))
        self.model, self.schedule, _ = load_diffusion(layout.diffusion(args.dataset, task).model)
        self.clf, ckpt = load_classifier(layout.classifier(args.dataset, task).model)
        self.pos_weight = ckpt.get("pos_weight")
        self.gen = GenerationSettings.from_config(config["generation"])
        self.labels = sample_labels(self.prep.y["train"], None, seed=0)
        self.shape = (self.prep.seq_len, len(self.prep.features))
        xr, yr = reference_batch(self.prep.x["train"], self.prep.y["train"], self.labels)
        self.reference = (torch.as_tensor(xr), torch.as_tensor(yr))
        self.G = {loss: self._G(loss) for loss in ("bce", "training")}

    def _G(self, loss: str) -> torch.Tensor:
        pw = self.pos_weight if loss == "training" else None
        x, y = (torch.as_tensor(self.prep.x["guide"]), torch.as_tensor(self.prep.y["guide"]))
        return influence_vector(self.clf, x, y, loss=loss_for(pw))[0]

    def draw(self, option: tuple[str, str, str] | None, scale: float) -> np.ndarray:
        guidance, schedule = None, "constant"
        if option is not None:
            loss, preserve, schedule = option
            pw = self.pos_weight if loss == "training" else None
            guidance = Guidance(
                "tardiff", self.clf, self.G[loss], scale, normalize=self.gen.normalize,
                reference=self.reference, loss=loss_for(pw), preserve=preserve,
                fd_eps=self.gen.fd_eps,
            )  # fmt: skip
        x, _ = generate(
            self.model, self.schedule, self.labels, *self.shape, self.gen.batch_size,
            self.gen.sampler, self.gen.steps, self.gen.eta, guidance, seed=0, progress=False,
            guide_skip_share=self.gen.guide_skip_share, shift_schedule=schedule,
            shift_cutoff=self.gen.shift_cutoff,
        )  # fmt: skip
        return x


def _describe(setup: Setup, judge, x: np.ndarray) -> dict:
    y = setup.labels
    own = judge.own_label_share(x, y)
    clf_own = own_label_share(setup.clf, x, y, setup.device)
    s = sample_influence(setup.clf, setup.G["training"], torch.as_tensor(x), torch.as_tensor(y),
                         loss=loss_for(setup.pos_weight)).numpy()  # fmt: skip
    phys = setup.prep.transform.inverse(x)
    oor = next(r["value"] for r in plausibility(phys, setup.prep.features)
               if r["metric"] == "out_of_range" and r["feature"] == "all")  # fmt: skip
    return {
        "own_0": own[0], "own_1": own[1], "clf_own_0": clf_own["0"], "clf_own_1": clf_own["1"],
        "out_of_range": oor, "influence_0": float(s[y == 0].mean()),
        "influence_1": float(s[y == 1].mean()),
    }  # fmt: skip


def _utility(setup: Setup, draws: list[np.ndarray], settings, seeds: int) -> list[dict]:
    """TSTR and TSRTR (α = 1) AUPRC on select, mean over model seeds, of every draw."""
    x_tr, y_tr = setup.prep.x["train"], setup.prep.y["train"]
    pool_x = np.concatenate([x_tr, *draws])
    pool_y = np.concatenate([y_tr, *[setup.labels] * len(draws)]).astype(np.float32)
    real, members, model_seeds = np.arange(len(x_tr)), [], []
    for i in range(len(draws)):
        rows = len(x_tr) + i * len(setup.labels) + np.arange(len(setup.labels))
        for k in range(seeds):
            members += [rows, np.concatenate([real, rows])]
            model_seeds += [k, k]
    ens = train_models(pool_x, pool_y, members, model_seeds, settings, device=setup.device)
    y_sel = setup.prep.y["select"]
    y_all = np.broadcast_to(y_sel, (len(members), len(y_sel)))
    ap = average_precision(y_all, ens.predict(setup.prep.x["select"]))
    ap = ap.reshape(len(draws), seeds, 2)
    return [{"tstr_auprc": float(a[:, 0].mean()), "tsrtr_auprc": float(a[:, 1].mean())}
            for a in ap]  # fmt: skip


def main() -> None:
    args = _args()
    torch.set_num_threads(args.threads)
    config = load_config(args.config)
    start = time.perf_counter()
    setup = Setup(args, config)
    fidelity = config["fidelity"]
    judge = train_judge(setup.prep, JudgeSettings.from_config(fidelity["judge"]), config["seed"],
                        setup.device)  # fmt: skip
    disc = EvaluationModelSettings.from_config(
        {**config["evaluation"]["model"], **fidelity["discriminator"]}
    )
    scales = args.scales or list(config["generation"]["scales"]["tardiff"])
    runs = [("conditional", None, 0.0)] + [
        (name, OPTIONS[name], w) for name in args.options for w in scales
    ]
    rows, draws = [], []
    for name, option, w in runs:
        t0 = time.perf_counter()
        x = setup.draw(option, w)
        score = discriminative_score(setup.prep.x["train"], x, disc, 3, 0, device=setup.device)
        row = {"option": name, "scale": w, **_describe(setup, judge, x)}
        move = float(np.sqrt(np.mean((x - draws[0]) ** 2))) if draws else 0.0
        row.update(move_rms=move, disc_auroc=score["disc_auroc"].mean)
        row.update(draw_s=time.perf_counter() - t0)
        rows.append(row)
        draws.append(x)
        print(f"{name} w={w:g}: {rows[-1]}", flush=True)
    model = EvaluationModelSettings.from_config(config["evaluation"]["model"])
    for row, util in zip(rows, _utility(setup, draws, model, args.seeds), strict=True):
        row.update(util)
    table = pd.DataFrame(rows)
    real = judge.own_label_share(setup.prep.x["select"], setup.prep.y["select"])
    print(f"judge on real select: own_0 {real[0]:.3f}, own_1 {real[1]:.3f}")
    print(table.drop(columns="draw_s").to_markdown(index=False, floatfmt=".3f"))
    out = Path(args.out)
    write_csv(table, out / f"{args.dataset}_{args.task}.csv")
    print(f"wall {time.perf_counter() - start:.0f} s; written to {out}")


if __name__ == "__main__":
    main()
