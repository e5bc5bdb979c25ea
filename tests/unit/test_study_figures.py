"""Figures and tables of the guidance studies, fidelity, privacy and efficiency, on small inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from tardiff.evaluate.reporting import samples_figure as samples_module
from tardiff.evaluate.reporting import study_figures as sf
from tardiff.evaluate.reporting.plotting import colour
from tardiff.evaluate.reporting.samples_figure import samples_figure

PNG = b"\x89PNG\r\n\x1a\n"
SCALES = (-0.3, -0.03, 0.0, 0.03, 0.3)
SCALE = {"tardiff": 0.03}  # the chosen scale in the fidelity and privacy rows


def _figure_ok(tmp_path: Path, name: str = "fig", min_bytes: int = 5000) -> None:
    png, pdf = (tmp_path / f"{name}.png").read_bytes(), (tmp_path / f"{name}.pdf").read_bytes()
    assert png[:8] == PNG and len(png) > min_bytes
    assert pdf[:5] == b"%PDF-" and len(pdf) > 1000


def _paths(tmp_path: Path, name: str = "fig") -> dict[str, str]:
    return {"png": str(tmp_path / f"{name}.png"), "pdf": str(tmp_path / f"{name}.pdf")}


def _table(tmp_path: Path, name: str = "table") -> dict[str, str]:
    return {"md": str(tmp_path / f"{name}.md"), "csv": str(tmp_path / f"{name}.csv")}


def _md_rows(path: str) -> list[list[str]]:
    lines = Path(path).read_text().splitlines()
    assert lines[0] and not lines[0].startswith("|") and lines[1] == ""  # title line
    assert all(line.startswith("|") for line in lines[2:])
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines[4:]]


def _sweep(nan_disc: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for dataset in ("mimic3_demo", "eicu_demo"):
        for method in ("classifier_guidance", "tardiff"):
            for scale in SCALES:
                auroc, auprc, disc = rng.uniform(0.6, 0.8), rng.uniform(0.2, 0.4), 0.5 + abs(scale)
                rows.append(dict(dataset=dataset, task="mortality", method=method, scale=scale,
                                 n_seeds=2, influence_0=scale, influence_1=-scale, auroc=auroc,
                                 auroc_min=auroc - 0.02, auroc_max=auroc + 0.02, auprc=auprc,
                                 auprc_min=auprc - 0.03, auprc_max=auprc + 0.03, disc_auroc=disc,
                                 disc_auroc_lo=disc - 0.05, disc_auroc_hi=disc + 0.05,
                                 label_share_0=1 - abs(scale), label_share_1=0.9))  # fmt: skip
    frame = pd.DataFrame(rows)
    if nan_disc:
        frame.loc[frame["method"] == "tardiff", ["disc_auroc", "disc_auroc_lo"]] = np.nan
        frame.loc[frame["dataset"] == "eicu_demo", "disc_auroc_hi"] = np.nan
    return frame


def _studies() -> pd.DataFrame:
    rows = []
    for seed in (0, 1, 2):
        for fraction, n_guide in ((0.25, 25), (0.5, 50), (1.0, 100)):
            value = 0.6 + 0.1 * fraction + 0.01 * seed
            rows.append(dict(dataset="mimic3_demo", task="mortality", study="guide_size",
                             variant=f"fraction{fraction:g}", source="all", fraction=fraction,
                             n_guide=n_guide, scale=0.03, seed=seed,
                             **_metrics(value)))  # fmt: skip
        sources = (("majority", 80, 0.5), ("all", 100, 0.6), ("minority", 20, 0.7))
        for source, n_guide, base in sources:
            rows.append(dict(dataset="mimic3_demo", task="mortality", study="guide_source",
                             variant=source, source=source, fraction=1.0, n_guide=n_guide,
                             scale=0.03, seed=seed, **_metrics(base + 0.01 * seed)))  # fmt: skip
    return pd.DataFrame(rows)


def _metrics(value: float) -> dict[str, float]:
    out = {}
    for offset, metric in enumerate(("auroc", "auprc", "minority_f1")):
        est = value - 0.1 * offset
        out |= {metric: est, f"{metric}_lo": est - 0.05, f"{metric}_hi": est + 0.05}
    return out


def test_sweep_figure_writes_png_and_pdf(tmp_path):
    sf.sweep_figure(sweep=_sweep(), **_paths(tmp_path))
    _figure_ok(tmp_path, min_bytes=50_000)


def test_sweep_figure_survives_nan_discriminator_rows(tmp_path):
    sweep = _sweep(nan_disc=True)
    sweep.loc[sweep["dataset"] == "eicu_demo", "disc_auroc"] = np.nan  # a whole panel empty
    sf.sweep_figure(sweep=sweep, **_paths(tmp_path))
    _figure_ok(tmp_path, min_bytes=50_000)


def test_guidance_size_figure_writes_png_and_pdf(tmp_path):
    sf.guidance_size_figure(studies=_studies(), **_paths(tmp_path))
    _figure_ok(tmp_path, min_bytes=20_000)


def test_table5_means_sd_and_source_order(tmp_path):
    sf.table5(studies=_studies(), **_table(tmp_path))
    table = pd.read_csv(tmp_path / "table.csv")
    assert table["source"].tolist() == ["all", "minority", "majority"]
    minority = table.set_index("source").loc["minority"]
    assert minority["minority_f1"] == pytest.approx(0.7 - 0.2 + 0.01)  # mean of seeds 0, 1, 2
    assert minority["minority_f1_sd"] == pytest.approx(0.01)
    assert minority["minority_f1_lo"] == pytest.approx(0.51 - 0.05)
    assert minority["n_guide"] == 20 and minority["n_seeds"] == 3
    rows = _md_rows(str(tmp_path / "table.md"))
    assert [r[2] for r in rows] == ["all", "minority", "majority"]
    assert rows[1][3:7] == ["20", "3", "0.510 [0.460, 0.560]", "0.010"]


def _summary(dataset: str, minority: int, means: tuple[float, float]) -> dict:
    by_class = {str(c): {"n": 10 * (c + 1), "mean_grad_norm": means[c],
                         "median_grad_norm": means[c] / 2} for c in (0, 1)}  # fmt: skip
    return {"dataset": dataset, "task": "mortality", "source": "all", "normalize": True,
            "minority_label": minority, "n_guide": 30, "n_guide_total": 30, "n_params": 100,
            "grad_norm_by_class": by_class, "wall_s": 1.0, "peak_rss_mb": 10.0}  # fmt: skip


def test_table3_minority_over_majority_ratio(tmp_path):
    summaries = [_summary("mimic3_demo", 1, (0.5, 2.0)), _summary("eicu_demo", 0, (3.0, 1.5))]
    sf.table3(summaries=summaries, **_table(tmp_path))
    table = pd.read_csv(tmp_path / "table.csv").set_index("dataset")
    assert table.index.tolist() == ["eicu_demo", "mimic3_demo"]
    assert table.loc["mimic3_demo", "ratio_of_means"] == pytest.approx(2.0 / 0.5)
    assert table.loc["eicu_demo", "ratio_of_means"] == pytest.approx(3.0 / 1.5)
    assert table.loc["eicu_demo", "n_minority"] == 10 and table.loc["eicu_demo", "n_majority"] == 20
    rows = _md_rows(str(tmp_path / "table.md"))
    assert len(rows) == 2 and rows[1][-1] == "4.00" and rows[1][-3] == "2"  # mimic: mean minority


def test_table3_names_a_missing_key(tmp_path):
    summary = _summary("mimic3_demo", 1, (0.5, 2.0))
    del summary["grad_norm_by_class"]
    with pytest.raises(ValueError, match="grad_norm_by_class"):
        sf.table3(summaries=[summary], **_table(tmp_path))


def test_samples_figure_writes_png_and_pdf(tmp_path):
    rng = np.random.default_rng(1)
    n, steps, features = 600, 12, 2  # > 500 sequences: the PCA panels subsample
    real = (rng.normal(size=(n, steps, features)) + [80, 120], rng.integers(0, 2, n))
    draws = {m: (rng.normal(size=(200, steps, features)) + [82, 118], rng.integers(0, 2, 200))
             for m in ("tardiff", "conditional")}  # fmt: skip
    samples_figure(real=real, draws=draws, features=["hr", "sbp"], units=["bpm", "mmHg"],
                      title="mimic3_demo / mortality: real train vs synthetic (seed 0), "
                      "physical units", **_paths(tmp_path))  # fmt: skip
    _figure_ok(tmp_path, min_bytes=50_000)


def _fidelity() -> pd.DataFrame:
    rows = []
    values = {"real_holdout": 0.55, "jitter": 0.9, "tardiff": 0.7}
    for method, disc in values.items():
        for seed in [np.nan] if method == "real_holdout" else [0, 1]:
            shift = 0 if np.isnan(seed) else 0.02 * seed
            for metric, feature, value in (("disc_auroc", "all", disc + shift),
                                           ("disc_score", "all", disc - 0.5),
                                           ("mmd", "all", 0.1), ("out_of_range", "all", 0.01),
                                           ("out_of_range", "hr", 0.5),
                                           ("label_share_0", "all", 0.8 + shift),
                                           ("label_share_1", "all", 0.6),
                                           ("wasserstein", "hr", 3.0)):  # fmt: skip
                lo, hi = (value - 0.1, value + 0.1) if metric == "disc_auroc" else (np.nan,) * 2
                rows.append(dict(dataset="mimic3_demo", task="mortality", method=method,
                                 scale=SCALE.get(method, np.nan), seed=seed,
                                 reference="real train (imputed grids)",
                                 metric=metric, feature=feature, value=value, lo=lo,
                                 hi=hi))  # fmt: skip
            if method != "real_holdout":
                rows.append(dict(rows[-1], metric="pred_mae", feature="all", value=0.3, lo=np.nan,
                                 hi=np.nan))  # fmt: skip
    rows.append(dict(rows[-1], method="real", scale=np.nan, seed=np.nan, value=0.25))
    return pd.DataFrame(rows)


def _privacy() -> pd.DataFrame:
    rows = []
    for method in ("tardiff", "jitter"):
        for seed in (0, 1):
            rows.append(dict(dataset="mimic3_demo", task="mortality", method=method,
                             scale=SCALE.get(method, np.nan),
                             seed=seed, n_synthetic=100, n_holdout=50, n_members=50,
                             dcr_share=0.5 + 0.1 * seed, dcr_p5_synthetic=0.1, dcr_p5_holdout=0.1,
                             attack_auc=0.52, attack_auc_lo=0.45, attack_auc_hi=0.6,
                             near_copies=seed + 1, near_copy_distance=0.05))  # fmt: skip
    return pd.DataFrame(rows)


def test_fidelity_privacy_table_order_and_means(tmp_path):
    sf.fidelity_privacy_table(fidelity=_fidelity(), privacy=_privacy(), **_table(tmp_path))
    table = pd.read_csv(tmp_path / "table.csv").set_index("method")
    assert table.index.tolist() == ["real_holdout", "real", "tardiff", "jitter"]
    assert table.loc["tardiff", "disc_auroc"] == pytest.approx(0.71)  # (0.70 + 0.72) / 2
    assert table.loc["tardiff", "disc_auroc_lo"] == pytest.approx(0.61)
    assert table.loc["tardiff", "out_of_range"] == pytest.approx(0.01)  # feature "all" only
    assert table.loc["tardiff", "label_share_0"] == pytest.approx(0.81)  # (0.80 + 0.82) / 2
    assert table.loc["real_holdout", "label_share_1"] == pytest.approx(0.6)
    assert table.loc["tardiff", "scale"] == 0.03 and np.isnan(table.loc["jitter", "scale"])
    assert table.loc["real", "pred_mae"] == pytest.approx(0.25)
    assert table.loc["jitter", "dcr_share"] == pytest.approx(0.55)
    assert table.loc["jitter", "near_copies"] == 3 and table.loc["jitter", "n_synthetic"] == 200
    assert np.isnan(table.loc["real_holdout", "dcr_share"])
    rows = _md_rows(str(tmp_path / "table.md"))
    assert [r[2] for r in rows] == ["real_holdout", "real", "tardiff", "jitter"]
    tardiff = rows[2]
    assert tardiff[3:6] == ["2", "0.03", "0.710 [0.610, 0.810]"]
    assert tardiff[11:13] == ["0.810", "0.600"]  # own label 0 and 1
    assert tardiff[-2:] == ["0.520 [0.450, 0.600]", "3 / 200"]
    assert rows[0][3] == "" and rows[0][-1] == ""  # real_holdout: no seeds, no privacy


def test_fidelity_rows_with_two_references_are_refused(tmp_path):
    fidelity = _fidelity()
    fidelity = pd.concat([fidelity, fidelity.assign(reference="real test")])
    with pytest.raises(ValueError, match="several rows"):
        sf.fidelity_privacy_table(fidelity=fidelity, privacy=_privacy(), **_table(tmp_path))


def test_fidelity_rows_at_two_scales_are_refused(tmp_path):
    privacy = _privacy().assign(scale=0.3)
    with pytest.raises(ValueError, match="several scales"):
        sf.fidelity_privacy_table(fidelity=_fidelity(), privacy=privacy, **_table(tmp_path))


def test_fidelity_table_without_privacy_rows(tmp_path):
    privacy = _privacy().iloc[:0]
    sf.fidelity_privacy_table(fidelity=_fidelity(), privacy=privacy, **_table(tmp_path))
    assert len(_md_rows(str(tmp_path / "table.md"))) == 4


def test_efficiency_table_sorted_and_rounded(tmp_path):
    efficiency = pd.DataFrame(
        [["train", "mimic3_demo", "mortality", 2, 123.456, 2048.7, ""],
         ["influence vector G (one-time)", "mimic3_demo", "mortality", 1, 5.04, 900.2, "30 stays"],
         ["train", "eicu_demo", "mortality", 1, 10.0, 512.0, None]],
        columns=["stage", "dataset", "task", "jobs", "wall_s", "max_rss_mb", "note"],
    )  # fmt: skip
    sf.efficiency_table(efficiency=efficiency, **_table(tmp_path))
    table = pd.read_csv(tmp_path / "table.csv")
    assert table["dataset"].tolist() == ["mimic3_demo", "eicu_demo", "mimic3_demo"]
    assert table["wall_s"].tolist() == [5.0, 10.0, 123.5]
    rows = _md_rows(str(tmp_path / "table.md"))
    assert rows[2][4:] == ["123.5", "2049", ""]
    assert rows[0][0] == "influence vector G (one-time)" and rows[0][-1] == "30 stays"


@pytest.mark.parametrize(
    "function",
    [
        lambda p: sf.sweep_figure(sweep=_sweep().iloc[:0], **_paths(p)),
        lambda p: sf.guidance_size_figure(studies=_studies().query("study == 'x'"), **_paths(p)),
        lambda p: sf.sweep_figure(sweep=pd.DataFrame(), **_paths(p)),
        lambda p: samples_figure(
            real=(np.zeros((0, 4, 1)), np.zeros(0)),
            draws={},
            features=["hr"],
            units=["bpm"],
            title="t",
            **_paths(p),
        ),
    ],
    ids=["sweep", "guide_size", "sweep_no_columns", "samples"],
)
def test_empty_figure_inputs_give_a_placeholder(tmp_path, function):
    function(tmp_path)
    _figure_ok(tmp_path, min_bytes=1000)


@pytest.mark.parametrize(
    "function",
    [
        lambda p: sf.table5(studies=_studies().query("study == 'guide_size'"), **_table(p)),
        lambda p: sf.table5(studies=pd.DataFrame(), **_table(p)),
        lambda p: sf.table3(summaries=[], **_table(p)),
        lambda p: sf.fidelity_privacy_table(
            fidelity=_fidelity().iloc[:0], privacy=_privacy().iloc[:0], **_table(p)
        ),
        lambda p: sf.efficiency_table(efficiency=pd.DataFrame(), **_table(p)),
    ],
    ids=["table5", "table5_no_columns", "table3", "fidelity", "efficiency"],
)
def test_empty_table_inputs_give_a_placeholder(tmp_path, function):
    function(tmp_path)
    (note,) = _md_rows(str(tmp_path / "table.md"))
    assert note[0].startswith("no ")
    assert pd.read_csv(tmp_path / "table.csv")["note"].tolist() == note


def test_reruns_are_byte_identical(tmp_path):
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        sf.guidance_size_figure(studies=_studies(), **_paths(tmp_path / run))
        sf.table5(studies=_studies(), **_table(tmp_path / run))
    for name in ("fig.png", "fig.pdf", "table.md", "table.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.fixture
def drawn(monkeypatch):
    """Figures of study_figures and samples_figure as drawn, not saved."""
    figures = []
    for module in (sf, samples_module):
        monkeypatch.setattr(module, "finish", lambda fig, note, png, pdf: figures.append(fig))
    return figures


def test_guidance_size_figure_marks_the_full_guide_set(tmp_path, drawn):
    sf.guidance_size_figure(studies=_studies(), **_paths(tmp_path))
    studies = _studies().query("study == 'guide_size' and fraction == 1.0")
    for ax, metric in zip(drawn[0].axes, ("auroc", "auprc"), strict=True):
        (line,) = [ln for ln in ax.get_lines() if ln.get_label().startswith("full guide set")]
        assert line.get_ydata()[0] == pytest.approx(studies[metric].mean())
        assert line.get_linestyle() == "--"


def test_fidelity_table_names_a_method_at_conditionals_samples(tmp_path):
    fidelity = _fidelity()
    cfg = fidelity[fidelity["method"] == "tardiff"].assign(method="cfg", scale=0.0)
    sf.fidelity_privacy_table(fidelity=pd.concat([fidelity, cfg]), privacy=_privacy(),
                              **_table(tmp_path))  # fmt: skip
    lines = Path(tmp_path / "table.md").read_text().splitlines()
    assert lines[2].split(" | ")[4] == "chosen w" and "0 (= conditional)" in lines[0]
    chosen = {r[2]: r[4] for r in _md_rows(str(tmp_path / "table.md"))}
    assert chosen == {"real_holdout": "", "real": "", "tardiff": "0.03",
                      "cfg": "0 (= conditional)", "jitter": ""}  # fmt: skip


def test_samples_figure_draws_real_in_black_and_each_method_in_its_colour(tmp_path, drawn):
    rng = np.random.default_rng(2)
    real = (rng.normal(size=(40, 6, 1)), np.repeat([0, 1], 20))
    draws = {m: (rng.normal(size=(40, 6, 1)), np.repeat([0, 1], 20)) for m in ("jitter", "cfg")}
    samples_figure(real=real, draws=draws, features=["hr"], units=["bpm"], title="t",
                   **_paths(tmp_path))  # fmt: skip
    trajectories = [
        ax for ax in drawn[0].axes if ax.collections and not ax.get_title().startswith("PCA")
    ]
    assert [ax.get_title() for ax in trajectories] == ["cfg", "jitter"] * 2  # class 0, class 1
    for ax, method in zip(trajectories, ["cfg", "jitter"] * 2, strict=True):
        (band,) = ax.collections  # one band: the method's; real's 10–90 % are dashed lines
        assert tuple(band.get_facecolor()[0]) == to_rgba(colour(method), samples_module.BAND_ALPHA)
        real_lines = [ln for ln in ax.get_lines() if ln.get_color() == "black"]
        assert [ln.get_linestyle() for ln in real_lines] == ["-", "--", "--"]
