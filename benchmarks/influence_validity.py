"""Does first-order influence predict benefit? A check of TarDiff's premise on one dataset x task.

s(z) = G · ∇φℓ(x, y; φ*), G = Σ_guide ∇φℓ, ℓ the guidance classifier's training loss (BCE with
its checkpoint's ``pos_weight``), eval mode. Reads the cohort, classifier and diffusion model the
workflow wrote (:class:`tardiff.layout.Layout`); G is recomputed with ℓ (cosine to a stored
``G.pt`` reported). The test split is never loaded.

(a) Sanity: for ``--n-sanity`` samples (real train and conditional draws, both classes) the
    change ΔL of the summed guide loss after one plain SGD step of size η on the sample alone,
    from φ* (float64), against -η·s: Spearman ρ and Pearson r.
(b) Premise: ``--n-draw-factor`` x |train| conditional draws (train class ratio, the config's
    sampler) ranked by s within class; the top, middle and bottom quintile and a random group of
    the same class mix (redrawn per seed) are each added to real train and one evaluation model
    per seed is trained (``evaluation.model``, the harness's ``train_models``); scored by the
    guide BCE (plain and ``pos_weight``-ed) and the ``select`` AUPRC; "real only" as reference.
(c) Other rankings, scored the same way: cosine s/‖∇φℓ(z)‖; TracIn, the mean of G_k·∇φℓ(z; φ_k)
    over the per-epoch states of the guidance classifier retrained with its recipe and seed
    (every epoch run, the restored best one among them); inverse Hessian v·∇φℓ(z) with
    (H + λI) v = G by CG, H the Hessian of the mean training loss over train at φ*
    (double-backward products; indefinite after early stopping), λ = max(``--damping`` λ_max,
    2|λ_min|) from ``--lanczos-iters`` Lanczos steps, doubled while CG meets negative curvature.
Intervals: paired difference to the random group of the same seed, mean ± t(0.975, n-1) SD/√n
over seeds. "label agree": share of a group whose guidance-classifier call (p > 0.5) is its label.

    python benchmarks/influence_validity.py --results /work/exp/results --dataset mimic3_demo \
        --task mortality --out /work/exp/influence_validity [--quick]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import logging
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.metrics import average_precision_score
from torch.func import functional_call

import tardiff.models.train_classifier as tc
from tardiff.config import load_config
from tardiff.data import prepare, sample_labels
from tardiff.diffusion.samplers import generate
from tardiff.diffusion.train import load_diffusion
from tardiff.evaluate.downstream.ensemble import train_models
from tardiff.guidance.per_sample import detached_params, loss_for, per_sample_grads, unflatten
from tardiff.guidance.per_sample import per_sample_loss as bce
from tardiff.io import atomic_path, load_checkpoint, write_csv
from tardiff.layout import Layout
from tardiff.models.classifier import unrolled_rnn
from tardiff.runtime import setup_logging
from tardiff.settings import ClassifierSettings, EvaluationSettings, GenerationSettings

log = logging.getLogger("influence_validity")
CHUNK = 128
PARTS = ("top", "middle", "bottom")
METRICS = ("guide_bce", "guide_wbce", "select_auprc")


def grads_dot(model, x, y, loss, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) dots of every per-sample gradient with K directions (K, P), and the (N,) norms."""
    dots, norms = [], []
    for i in range(0, len(x), CHUNK):
        g = per_sample_grads(model, x[i : i + CHUNK], y[i : i + CHUNK], loss)
        dots.append(g @ directions.T.to(g))
        norms.append(g.norm(dim=1))
    return torch.cat(dots), torch.cat(norms)


def grad_sum(model, x, y, loss) -> torch.Tensor:
    """Σ_i ∇φℓ(x_i, y_i) (G when x, y is the guide set)."""
    return sum(per_sample_grads(model, x[i : i + CHUNK], y[i : i + CHUNK], loss).sum(0)
               for i in range(0, len(x), CHUNK))  # fmt: skip


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a))


# ---------------------------------------------------------------- (a) code sanity
def sanity_samples(x_real, y_real, x_syn, y_syn, n: int, seed: int):
    """Up to n/4 samples per (source, class): x, y and the source of each."""
    rng, xs, ys, src = np.random.default_rng([seed, 3]), [], [], []
    for name, x, y in (("real", x_real, y_real), ("synthetic", x_syn, y_syn)):
        for c in (0, 1):
            idx = np.flatnonzero(y == c)
            idx = rng.choice(idx, min(len(idx), n // 4), replace=False)
            xs.append(x[idx]), ys.append(y[idx]), src.extend([name] * len(idx))
    return np.concatenate(xs), np.concatenate(ys), np.array(src)


@torch.no_grad()
def _summed_loss(model, params, x, y, loss) -> float:
    return float(loss(functional_call(model, params, (x,)), y).sum())


def sanity_check(model, loss, guide, samples, etas, n_sanity: int, seed: int) -> pd.DataFrame:
    """Per sample and η: predicted -η·s and actual ΔL of Σ_guide ℓ after φ - η∇φℓ(z) (float64)."""
    m64 = copy.deepcopy(model).double().eval()
    xg, yg = _t(guide[0]).double(), _t(guide[1]).double()
    x, y, src = sanity_samples(*samples, n_sanity, seed)
    x, y = _t(x).double(), _t(y).double()
    G = grad_sum(m64, xg, yg, loss)
    g = torch.cat([per_sample_grads(m64, x[i : i + CHUNK], y[i : i + CHUNK], loss)
                   for i in range(0, len(x), CHUNK)])  # fmt: skip
    s = (g @ G).numpy()
    like = detached_params(m64)
    phi = torch.cat([p.reshape(-1) for p in like.values()])
    base = _summed_loss(m64, like, xg, yg, loss)
    rows = []
    for eta in etas:
        for i in range(len(x)):
            moved = unflatten(phi - eta * g[i], like)
            delta = _summed_loss(m64, moved, xg, yg, loss) - base
            rows.append({"eta": eta, "source": src[i], "label": int(y[i]), "s": s[i],
                         "predicted": -eta * s[i], "actual": delta,
                         "step_norm": eta * float(g[i].norm())})  # fmt: skip
    return pd.DataFrame(rows)


def sanity_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per η and source (all, real, synthetic): ρ, r, median relative error, median step norm."""
    rows = []
    for eta, part in frame.groupby("eta", sort=False):
        for what in ("all", "real", "synthetic"):
            sub = part if what == "all" else part[part.source == what]
            rel = (sub.actual - sub.predicted).abs() / sub.predicted.abs().clip(lower=1e-300)
            rows.append({"eta": eta, "samples": what, "n": len(sub),
                         "spearman": stats.spearmanr(sub.predicted, sub.actual)[0],
                         "pearson": stats.pearsonr(sub.predicted, sub.actual)[0],
                         "median_rel_err": float(rel.median()),
                         "median_step_norm": float(sub.step_norm.median())})  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- (c) remedies
def tracin_scores(model, ckpt, prepared, settings, seed, x, y, loss) -> tuple[np.ndarray, dict]:
    """Mean over the retrained classifier's epoch states of G_k · ∇φℓ(z; φ_k); the states are
    taken when ``train_classifier`` scores the select split with ``predict_logits``."""
    states, original = [], tc.predict_logits

    def snapshot(m, *args, **kwargs):  # called once per epoch, right after its updates
        states.append({k: v.detach().clone() for k, v in m.state_dict().items()})
        return original(m, *args, **kwargs)

    with mock.patch.object(tc, "predict_logits", snapshot):
        retrained, metrics = tc.train_classifier(prepared, settings, torch.device("cpu"), seed)
    diff = max(float((retrained.state_dict()[k] - v).abs().max())
               for k, v in ckpt["state_dict"].items())  # fmt: skip
    xg, yg = _t(prepared.x["guide"]), _t(prepared.y["guide"])
    total = torch.zeros(len(x))
    for k, state in enumerate(states, 1):
        m = copy.deepcopy(model)
        m.load_state_dict(state)
        m.eval()
        total += grads_dot(m, x, y, loss, grad_sum(m, xg, yg, loss)[None])[0][:, 0]
        log.info("TracIn: checkpoint %d/%d done", k, len(states))
    info = {"checkpoints": len(states), "best_epoch": metrics["best_epoch"],
            "max_abs_diff_to_stored": diff}  # fmt: skip
    return (total / len(states)).numpy(), info


def hessian_operator(model, x, y, loss):
    """v -> H v, H the Hessian of the mean loss over (x, y) at the model's parameters."""
    params = {k: p.clone().requires_grad_() for k, p in detached_params(model).items()}
    with torch.enable_grad(), unrolled_rnn():
        mean = loss(functional_call(model, params, (x,)), y).mean()
        grads = torch.autograd.grad(mean, list(params.values()), create_graph=True)
    flat = torch.cat([g.reshape(-1) for g in grads])

    def hvp(v: torch.Tensor) -> torch.Tensor:
        out = torch.autograd.grad(flat @ v, list(params.values()), retain_graph=True)
        return torch.cat([o.reshape(-1) for o in out]).detach()

    return hvp, flat.numel()


def lanczos_extremes(apply, n: int, iters: int, seed: int) -> tuple[float, float]:
    """Largest and smallest Ritz values of ``iters`` Lanczos steps (full reorthogonalisation)."""
    q = torch.randn(n, generator=torch.Generator().manual_seed(seed))
    basis, alphas, betas = [q / q.norm()], [], []
    for j in range(iters):
        w = apply(basis[-1])
        alphas.append(float(w @ basis[-1]))
        Q = torch.stack(basis)
        for _ in range(2):
            w = w - Q.T @ (Q @ w)
        if j == iters - 1 or float(w.norm()) < 1e-8:
            break
        betas.append(float(w.norm()))
        basis.append(w / betas[-1])
    ritz = np.linalg.eigvalsh(np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1))
    return float(ritz[-1]), float(ritz[0])


def conjugate_gradient(apply, b, iters: int, tol: float = 1e-4) -> tuple[torch.Tensor, dict]:
    """Solve A v = b (A symmetric); stops at relative residual ``tol`` or on negative curvature."""
    v, r = torch.zeros_like(b), b.clone()
    p, rr, stop = r.clone(), float(r @ r), "max_iter"
    for it in range(1, iters + 1):  # noqa: B007 (reported)
        ap = apply(p)
        curvature = float(p @ ap)
        if curvature <= 0:
            stop = "negative curvature"
            break
        alpha = rr / curvature
        v, r = v + alpha * p, r - alpha * ap
        new = float(r @ r)
        if new**0.5 <= tol * float(b.norm()):
            stop = "converged"
            break
        p, rr = r + (new / rr) * p, new
    return v, {"cg_iters": it, "cg_stop": stop, "cg_rel_residual": float(r.norm() / b.norm())}


def inverse_hessian_direction(model, prepared, loss, G, args) -> tuple[torch.Tensor, dict]:
    """v with (H + λI) v = G: λ = max(damping x λ_max, 2 |λ_min|) from Lanczos Ritz values,
    doubled and CG rerun while CG meets negative curvature (at most 5 times)."""
    hvp, n = hessian_operator(model, _t(prepared.x["train"]), _t(prepared.y["train"]), loss)
    top, low = lanczos_extremes(hvp, n, args.lanczos_iters, args.seed)
    damping = max(args.damping * top, -2 * low)
    for restart in range(6):  # noqa: B007 (reported)
        v, info = conjugate_gradient(lambda u, lam=damping: hvp(u) + lam * u, G, args.cg_iters)
        if info["cg_stop"] != "negative curvature":
            break
        damping *= 2
    cos = float(v @ G / (v.norm() * G.norm()))
    return v, {"lambda_max": top, "lambda_min": low, "damping": damping,
               "damping_restarts": restart, **info, "cos_v_G": cos}  # fmt: skip


# ---------------------------------------------------------------- (b) groups and models
def quintiles(score: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Top, middle and bottom fifth of ``score`` within each class (stable order)."""
    out = {part: [] for part in PARTS}
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        order, k = idx[np.argsort(-score[idx], kind="stable")], len(idx) // 5
        mid = (len(idx) - k) // 2
        for part, rows in zip(PARTS, (order[:k], order[mid : mid + k], order[len(idx) - k :]),
                              strict=True):  # fmt: skip
            out[part].append(rows)
    return {part: np.concatenate(rows) for part, rows in out.items()}


def random_group(y: np.ndarray, like: np.ndarray, seed: int) -> np.ndarray:
    """Random rows with the class counts of ``like`` (seeded)."""
    rng = np.random.default_rng([seed, 7])
    return np.concatenate([rng.choice(np.flatnonzero(y == c), int((y[like] == c).sum()),
                                      replace=False) for c in (0, 1)])  # fmt: skip


def evaluate_groups(prepared, x_syn, y_syn, groups, seeds, settings, pos_weight) -> pd.DataFrame:
    """One evaluation model per (group, seed) on real train + the group's rows; guide/select."""
    n = len(prepared.y["train"])
    pool_x = np.concatenate([prepared.x["train"], x_syn])
    pool_y = np.concatenate([prepared.y["train"], y_syn]).astype(np.float32)
    keys = [(name, k, seed) for name in groups for k, seed in enumerate(seeds)]
    members = [np.r_[np.arange(n), n + groups[name][k]].astype(np.int64) for name, k, _ in keys]
    ensemble = train_models(pool_x, pool_y, members, [s for *_, s in keys], settings,
                            device=torch.device("cpu"))  # fmt: skip
    guide, select = ensemble.predict(prepared.x["guide"]), ensemble.predict(prepared.x["select"])
    yg = _t(prepared.y["guide"]).double()
    rows = []
    for i, (name, _, seed) in enumerate(keys):
        logits = torch.as_tensor(guide[i])
        rows.append({"group": name, "seed": seed, "n_synthetic": len(members[i]) - n,
                     "guide_bce": float(bce(logits, yg).mean()),
                     "guide_wbce": float(bce(logits, yg, pos_weight).mean()),
                     "select_auprc": average_precision_score(prepared.y["select"], select[i]),
                     })  # fmt: skip
    return pd.DataFrame(rows)


def _interval(d: pd.Series) -> tuple[float, float]:
    if len(d) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return d.mean() - half, d.mean() + half


def summarise(frame: pd.DataFrame, agree: dict[str, float]) -> pd.DataFrame:
    """Per group: mean, SD and the paired difference against ``random`` (seed by seed)."""
    rand = frame[frame.group == "random"].set_index("seed")
    rows = []
    for name, part in frame.groupby("group", sort=False):
        part = part.set_index("seed")
        row = {"group": name, "n_synthetic": int(part.n_synthetic.iloc[0]),
               "label_agree": agree.get(name, np.nan)}  # fmt: skip
        for m in METRICS:
            d = part[m] - rand[m].reindex(part.index)
            lo, hi = _interval(d)
            row.update({f"{m}_mean": part[m].mean(), f"{m}_sd": part[m].std(ddof=1),
                        f"{m}_delta": d.mean(), f"{m}_lo": lo, f"{m}_hi": hi})  # fmt: skip
        rows.append(row)
    return pd.DataFrame(rows)


def _cells(r, m: str) -> str:
    """'mean ± SD | Δ [lo, hi]' of metric ``m`` in a summary row."""
    v = {k: getattr(r, f"{m}_{k}") for k in ("mean", "sd", "delta", "lo", "hi")}
    return f"{v['mean']:.4f} ± {v['sd']:.4f} | {v['delta']:+.4f} [{v['lo']:+.4f}, {v['hi']:+.4f}]"


def markdown(summary: pd.DataFrame) -> str:
    lines = [
        "| group | n synth | label agree | guide BCE | Δ vs random [95 % t] | guide wBCE "
        "| Δ vs random | select AUPRC | Δ vs random [95 % t] |",
        "|---" + "|---:" * 8 + "|",
    ]
    for r in summary.itertuples():
        agree = "–" if np.isnan(r.label_agree) else f"{r.label_agree:.3f}"
        cells = " | ".join(_cells(r, m) for m in METRICS)
        lines.append(f"| {r.group} | {r.n_synthetic} | {agree} | {cells} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main
def draw_conditional(layout, args, prepared, gen: GenerationSettings):
    model, schedule, _ = load_diffusion(layout.diffusion(args.dataset, args.task).model)
    n = int(round(args.n_draw_factor * len(prepared.y["train"])))
    labels = sample_labels(prepared.y["train"], n, args.seed)
    x, _ = generate(model, schedule, labels, prepared.seq_len, len(prepared.features),
                    batch_size=gen.batch_size, sampler=gen.sampler, steps=gen.steps, eta=gen.eta,
                    seed=args.seed, clip_x0=gen.clip_x0)  # fmt: skip
    return x, labels


def rankings(classifier, ckpt, prepared, x, y, loss, config, args):
    """The four scores of every synthetic sample, and the remedies' diagnostics."""
    xg, yg = _t(prepared.x["guide"]), _t(prepared.y["guide"])
    G = grad_sum(classifier, xg, yg, loss)
    v, hess = inverse_hessian_direction(classifier, prepared, loss, G, args)
    log.info("inverse Hessian: %s", hess)
    dots, norms = grads_dot(classifier, _t(x), _t(y), loss, torch.stack([G, v]))
    settings = ClassifierSettings.from_config(config["classifier"])
    if args.quick:
        settings = dataclasses.replace(settings, max_epochs=2)
    tracin, trace = tracin_scores(classifier, ckpt, prepared, settings, config["seed"],
                                  _t(x), _t(y), loss)  # fmt: skip
    log.info("TracIn: %s", trace)
    scores = {"s": dots[:, 0].numpy(), "cosine": (dots[:, 0] / norms.clamp_min(1e-12)).numpy(),
              "tracin": tracin, "inv_hessian": dots[:, 1].numpy()}  # fmt: skip
    return scores, G, {**hess, **{f"tracin_{k}": val for k, val in trace.items()}}


def run(args) -> None:
    start = time.perf_counter()
    config = load_config(args.config)
    layout = Layout(args.results.rstrip("/")) if args.results else Layout.from_config(config)
    out = Path(args.out) / args.dataset / args.task
    cohort = layout.cohort(args.dataset)
    prepared = prepare(cohort.stays, cohort.timeseries, args.task, ("train", "guide", "select"))
    classifier, ckpt = tc.load_classifier(layout.classifier(args.dataset, args.task).model)
    loss = loss_for(ckpt["pos_weight"])
    gen = GenerationSettings.from_config(config["generation"])
    evaluation = EvaluationSettings.from_config(config["evaluation"]).model
    if args.steps or args.quick:
        gen = dataclasses.replace(gen, steps=10 if args.quick else args.steps)
    if args.quick:
        evaluation = dataclasses.replace(evaluation, steps=40)
    log.info("drawing %.2f x %d conditional samples", args.n_draw_factor, len(prepared.y["train"]))
    x_syn, y_syn = draw_conditional(layout, args, prepared, gen)
    log.info("(a) sanity check on %d samples", args.n_sanity)
    guide = (prepared.x["guide"], prepared.y["guide"])
    samples = (prepared.x["train"], prepared.y["train"], x_syn, y_syn)
    sanity = sanity_check(classifier, loss, guide, samples, args.etas, args.n_sanity, args.seed)
    sanity_summary = sanity_table(sanity)
    scores, G, info = rankings(classifier, ckpt, prepared, x_syn, y_syn, loss, config, args)
    info = {"sampler": f"{gen.sampler}, {gen.steps} steps, batch {gen.batch_size}", **info}
    if Path(stored := layout.influence(args.dataset, args.task).G).exists():
        stored = load_checkpoint(stored)
        info[f"cos(G, stored G.pt: {stored.get('loss')})"] = float(
            G @ stored["G"] / G.norm() / stored["G"].norm()
        )
    with torch.no_grad():
        logits = classifier(_t(x_syn)).numpy()
    agree_all = (logits > 0) == (y_syn == 1)
    seeds = list(range(args.seeds))
    groups = {"real only": [np.zeros(0, np.int64)] * len(seeds)}
    top = quintiles(scores["s"], y_syn)["top"]
    groups["random"] = [random_group(y_syn, top, seed) for seed in seeds]
    for name, score in scores.items():
        for part, rows in quintiles(score, y_syn).items():
            groups[f"{name} {part}"] = [rows] * len(seeds)
    agree = {name: float(np.mean([agree_all[r].mean() for r in rows]))
             for name, rows in groups.items() if len(rows[0])}  # fmt: skip
    log.info("(b, c) %d groups x %d seeds of evaluation models", len(groups), len(seeds))
    frame = evaluate_groups(prepared, x_syn, y_syn, groups, seeds, evaluation, ckpt["pos_weight"])
    summary = summarise(frame, agree)
    draws = pd.DataFrame({"label": y_syn, "logit": logits, **scores})
    report(out, args, sanity, sanity_summary, scores, draws, frame, summary, info, start)


def report(out, args, sanity, sanity_summary, scores, draws, frame, summary, info, start):
    y_syn = draws.label.to_numpy()
    corr = pd.DataFrame({name: [stats.spearmanr(scores["s"][y_syn == c], v[y_syn == c])[0]
                                for c in (0, 1)] for name, v in scores.items()},
                        index=["class 0", "class 1"])  # fmt: skip
    write_csv(sanity, out / "sanity.csv")
    write_csv(sanity_summary, out / "sanity_summary.csv")
    write_csv(draws, out / "scores.csv")
    write_csv(frame, out / "groups.csv")
    write_csv(summary, out / "summary.csv")
    wall = time.perf_counter() - start
    text = "\n\n".join([
        f"## {args.dataset}/{args.task}: influence validity (seeds {args.seeds}, draw "
        f"{args.n_draw_factor:g} x train{', quick' if args.quick else ''})",
        "### (a) predicted -η·s against actual ΔΣ guide loss (one SGD step, float64)",
        sanity_summary.to_markdown(index=False, floatfmt=".4g"),
        "### (b, c) groups added to the real train set",
        markdown(summary),
        "### Spearman ρ of each ranking with s, within class (synthetic draws)",
        corr.to_markdown(floatfmt=".3f"),
        "### Remedy diagnostics\n\n" + "\n".join(f"- {k}: {v:.4g}" if isinstance(v, float)
                                                  else f"- {k}: {v}" for k, v in info.items()),
        f"wall time {wall:.0f} s ({wall / 60:.1f} min), {torch.get_num_threads()} thread(s)",
    ])  # fmt: skip
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(text + "\n")
    print(text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    parser.add_argument("--results", default=None, help="results root (default: the config's)")
    parser.add_argument("--dataset", default="mimic3_demo")
    parser.add_argument("--task", default="mortality")
    parser.add_argument("--seeds", type=int, default=3, help="evaluation-model seeds 0..n-1")
    parser.add_argument("--n-draw-factor", type=float, default=5.0, help="draws / |train|")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps (config's)")
    parser.add_argument("--n-sanity", type=int, default=300)
    parser.add_argument("--etas", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    parser.add_argument("--damping", type=float, default=0.01, help="λ / λ_max")
    parser.add_argument("--lanczos-iters", type=int, default=30)
    parser.add_argument("--cg-iters", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="draws, sanity samples, Lanczos")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--out", default="results/influence_validity")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.n_draw_factor, args.n_sanity = min(args.seeds, 2), 0.25, 40
        args.lanczos_iters, args.cg_iters, args.etas = 10, 20, args.etas[:2]
    torch.set_num_threads(args.threads)
    setup_logging()
    run(args)


if __name__ == "__main__":
    main()
