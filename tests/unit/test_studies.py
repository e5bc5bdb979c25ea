"""Fidelity, privacy and guidance-study stages on a tiny cohort with hand-made draws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tiny_cohort import FEATURES, write_cohort

from tardiff.data import prepare, to_timeseries_frame
from tardiff.evaluate.downstream.sets import evaluation_draws
from tardiff.evaluate.quality.stage import (
    FIDELITY_COLUMNS,
    PRIVACY_COLUMNS,
    run_fidelity_stage,
    run_privacy_stage,
    run_samples_figure_stage,
)
from tardiff.evaluate.studies.efficiency import run_efficiency_stage, sampling_rows, stage_rows
from tardiff.evaluate.studies.stage import (
    GUIDANCE_COLUMNS,
    MAIN,
    SWEEP_COLUMNS,
    guidance_variants,
    run_guidance_study_stage,
    run_sweep_stage,
    study_draws,
    study_scale,
    sweep_draws,
    sweep_table,
)
from tardiff.guidance.influence import subsample
from tardiff.io import write_json, write_parquet
from tardiff.layout import FigureFiles, Layout, TableFiles
from tardiff.names import parse_variant, study_variant
from tardiff.settings import (
    EvaluationSettings,
    FidelitySettings,
    PrivacySettings,
    ScaleGrids,
    StudySettings,
)

TASK = "mortality"
METHODS = ("conditional", "tardiff")
GRIDS = ScaleGrids(tardiff=(0.1,), classifier_guidance=())
STUDIES = StudySettings(
    pairs=("d/mortality",),
    sweep_scales=(-0.1,),
    sweep_methods=("tardiff",),
    guide_fractions=(0.5,),
    guide_sources=("all", "minority"),
)
SEQ = 6


def test_variant_names_round_trip():
    assert study_variant("all", 0.25) == "guide0.25" and parse_variant("guide0.25") == (None, 0.25)
    assert parse_variant(study_variant("minority", 1.0)) == ("minority", 1.0)
    with pytest.raises(ValueError, match="unknown"):
        parse_variant("other")


def test_guide_subsample_is_stratified_and_nested_in_the_source():
    y = np.array([0] * 40 + [1] * 10)
    include = y == 1
    kept = subsample(include, y, 0.5, seed=3)
    assert kept.sum() == 5 and not (kept & ~include).any()
    both = subsample(np.ones(50, bool), y, 0.25, seed=3)
    assert (both[y == 0].sum(), both[y == 1].sum()) == (10, 2)  # round(2.5) = 2
    assert (subsample(include, y, 1.0, 3) == include).all()
    assert (subsample(include, y, 0.5, 3) == kept).all()
    assert subsample(np.ones(50, bool), y, 0.01, 3).sum() == 2  # at least one per class


def test_study_scale_and_variants():
    selection = {
        "methods": {"tardiff": {"grid": [0.0, 0.1, 0.3], "score": [0.9, 0.5, 0.6], "chosen": 0.0}}
    }
    assert study_scale(selection) == 0.3  # chosen 0: the best non-zero scale
    selection["methods"]["tardiff"]["chosen"] = 0.1
    assert study_scale(selection) == 0.1
    with pytest.raises(ValueError, match="tardiff"):
        study_scale({"methods": {}})
    rows = guidance_variants(STUDIES, "all")
    assert rows == [
        ("guide_size", MAIN, "all", 1.0),
        ("guide_size", "guide0.5", "all", 0.5),
        ("guide_source", MAIN, "all", 1.0),
        ("guide_source", "source-minority", "minority", 1.0),
    ]
    assert study_draws(STUDIES, "all") == ["guide0.5", "source-minority"]
    keys = sweep_draws(
        ("conditional", "tardiff", "classifier_guidance"),
        ScaleGrids(tardiff=(0.1,), classifier_guidance=(0.3,)),
        (-0.1,),
        ("tardiff",),
        2,
    )
    assert keys[:2] == [("conditional", 0.0, 0), ("conditional", 0.0, 1)]
    assert [k for k in keys if k[0] == "tardiff"] == [
        ("tardiff", -0.1, 0),
        ("tardiff", -0.1, 1),
        ("tardiff", 0.1, 0),
        ("tardiff", 0.1, 1),
    ]
    # methods outside studies.sweep_methods keep their own grid
    assert [k for k in keys if k[0] == "classifier_guidance"] == [
        ("classifier_guidance", 0.3, 0),
        ("classifier_guidance", 0.3, 1),
    ]


def test_sweep_table_aggregates_over_seeds():
    keys = [
        ("conditional", 0.0, 0),
        ("conditional", 0.0, 1),
        ("tardiff", 0.1, 0),
        ("tardiff", 0.1, 1),
    ]
    scores = {keys[0]: (0.6, 0.2), keys[1]: (0.8, 0.4), keys[2]: (0.5, 0.1), keys[3]: (0.7, 0.5)}
    influence = {k: {"0": -1.0 - i, "1": 2.0 * i} for i, k in enumerate(keys)}
    shares = {k: {0: 0.1 * i, 1: 1.0 - 0.1 * i} for i, k in enumerate(keys)}
    table = sweep_table(keys, scores, influence, {("tardiff", 0.1): (0.7, 0.6, 0.8)}, shares)
    row = table[table.scale == 0.1].iloc[0]
    assert (row.auroc, row.auroc_min, row.auroc_max) == pytest.approx((0.6, 0.5, 0.7))
    assert (row.influence_0, row.influence_1) == pytest.approx((-3.5, 5.0))
    assert (row.label_share_0, row.label_share_1) == pytest.approx((0.25, 0.75))
    assert row.disc_auroc == 0.7
    zero = table[table.scale == 0].iloc[0]
    assert zero.method == "tardiff" and zero.auprc == pytest.approx(0.3)
    assert np.isnan(zero.disc_auroc)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_config):
    """A cohort, the selection, draws of every evaluation key, sweep and study variant."""
    root = tmp_path_factory.mktemp("studies")
    cohort = write_cohort(root / "cohort", n=200, seq_len=SEQ)
    config = tiny_config(
        evaluation={
            "seeds": 2,
            "selection_seeds": 2,
            "model": {"hidden": 4, "steps": 8, "batch_size": 32},
            "bootstrap_resamples": 100,
        },
        fidelity={
            "runs": 2,
            "discriminator": {"hidden": 4, "steps": 10},
            "predictor": {"hidden": 4, "steps": 10},
            "max_mmd_samples": 50,
        },
        privacy={"bootstrap_resamples": 100},
    )
    layout = Layout(str(root / "results"))
    prepared = prepare(cohort.stays, cohort.timeseries, TASK)
    x, y = prepared.x["train"], prepared.y["train"]
    write_json(
        {"methods": {"tardiff": {"grid": [0.0, 0.1], "score": [0.5, 0.6], "chosen": 0.1}}},
        root / "selection.json",
    )
    files = {}
    for method, scale, seed in sweep_draws(METHODS, GRIDS, (-0.1,), ("tardiff",), 2) + [
        ("jitter", None, 0),
        ("jitter", None, 1),
        *(("variant", v, k) for v in range(2) for k in range(2)),
    ]:
        rng = np.random.default_rng([seed, int(100 * (scale or 0)) + 50])
        # jitter is an exact copy of real train: the privacy oracle
        noise = 0 if method == "jitter" else rng.normal(0, 0.5, x.shape)
        path = root / f"{method}_{scale}_{seed}.parquet"
        frame = to_timeseries_frame(prepared.transform.inverse(x + noise), y, FEATURES, TASK)
        write_parquet(frame, path)
        write_json(
            {"mean_sample_influence": {"0": -seed, "1": scale or 0.0}}, path.with_suffix(".json")
        )
        files[(method, scale, seed)] = path
    settings = {
        "evaluation": EvaluationSettings.from_config(config["evaluation"]),
        "fidelity": FidelitySettings.from_config(config["fidelity"]),
        "privacy": PrivacySettings.from_config(config["privacy"]),
    }
    return root, cohort, layout, files, settings


def _evaluated(files):
    return [files[k] for k in evaluation_draws(METHODS, {"tardiff": 0.1}, 2)]


def test_fidelity_and_privacy_stages(setup):
    root, cohort, _, files, s = setup
    common = dict(
        stays=cohort.stays,
        timeseries=cohort.timeseries,
        selection=root / "selection.json",
        synthetic=_evaluated(files),
        dataset="d",
        task=TASK,
        methods=METHODS,
        seeds=2,
    )
    fidelity = run_fidelity_stage(
        **common, out=root / "fidelity.csv", settings=s["fidelity"], device="cpu"
    )
    assert list(pd.read_csv(root / "fidelity.csv").columns) == FIDELITY_COLUMNS
    assert set(fidelity.method) == {"real_holdout", "real", "conditional", "tardiff", "jitter"}
    per_set = fidelity[fidelity.method == "tardiff"].groupby("seed")["metric"].apply(set)
    assert all({"disc_auroc", "disc_score", "pred_mae", "mmd", "wasserstein"} <= m for m in per_set)
    assert np.isfinite(fidelity["value"]).all()
    shares = fidelity[fidelity.metric.str.startswith("label_share_")]
    per_method = shares.groupby("method")["metric"].apply(set).to_dict()
    expected = {"label_share_0", "label_share_1"}
    assert per_method == {m: expected for m in ("real_holdout", "conditional", "tardiff", "jitter")}
    assert len(shares) == 2 * (1 + 3 * 2) and shares.value.between(0, 1).all()
    assert (shares.reference == "judge trained on real train (threshold on select)").all()
    # the exact copy of real train: no distance to it at all
    jitter = fidelity[(fidelity.method == "jitter") & (fidelity.metric == "wasserstein")]
    assert np.allclose(jitter["value"], 0, atol=1e-3)
    privacy = run_privacy_stage(**common, out=root / "privacy.csv", settings=s["privacy"])
    assert list(pd.read_csv(root / "privacy.csv").columns) == PRIVACY_COLUMNS
    copies = privacy[privacy.method == "jitter"]
    assert (copies.near_copies == copies.n_synthetic).all() and (copies.dcr_share == 1).all()
    assert (privacy[privacy.method == "tardiff"].near_copies == 0).all()
    figure = FigureFiles(str(root / "fig5.png"), str(root / "fig5.pdf"))
    run_samples_figure_stage(**common, out=figure)
    assert Path(figure.png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_stage_scores_every_scale_on_select(setup):
    root, cohort, _, files, s = setup
    keys = sweep_draws(METHODS, GRIDS, (-0.1,), ("tardiff",), 2)
    table = run_sweep_stage(
        stays=cohort.stays,
        timeseries=cohort.timeseries,
        synthetic=[files[k] for k in keys],
        records=[files[k].with_suffix(".json") for k in keys],
        dataset="d",
        task=TASK,
        out=root / "sweep.csv",
        keys=keys,
        evaluation=s["evaluation"],
        fidelity=s["fidelity"],
        device="cpu",
    )
    assert list(pd.read_csv(root / "sweep.csv").columns) == SWEEP_COLUMNS
    assert list(table.scale) == [-0.1, 0.0, 0.1] and (table.method == "tardiff").all()
    assert table.influence_1.tolist() == pytest.approx([-0.1, 0.0, 0.1])
    assert table.influence_0.tolist() == pytest.approx([-0.5] * 3)  # seeds 0 and 1
    assert table[["auroc", "auprc", "disc_auroc"]].notna().all().all()
    assert table[["label_share_0", "label_share_1"]].stack().between(0, 1).all()
    assert (table.auroc_min <= table.auroc).all() and (table.auroc <= table.auroc_max).all()


def test_guidance_study_stage(setup):
    root, cohort, _, files, s = setup
    variants = [MAIN, "guide0.5", "source-minority"]
    summaries = []
    for i, v in enumerate(variants):
        write_json({"n_guide": 10 - i}, root / f"{v}.json")
        summaries.append(root / f"{v}.json")
    synthetic = [files[("tardiff", 0.1, k)] for k in range(2)]
    synthetic += [files[("variant", v, k)] for v in range(2) for k in range(2)]
    table = run_guidance_study_stage(
        stays=cohort.stays,
        timeseries=cohort.timeseries,
        selection=root / "selection.json",
        synthetic=synthetic,
        summaries=summaries,
        variants=variants,
        dataset="d",
        task=TASK,
        out=root / "guidance.csv",
        studies=STUDIES,
        main_source="all",
        evaluation=s["evaluation"],
        device="cpu",
    )
    assert list(pd.read_csv(root / "guidance.csv").columns) == GUIDANCE_COLUMNS
    assert len(table) == 4 * 2 and (table.scale == 0.1).all()  # 4 study rows x 2 seeds
    main = table[table.variant == MAIN].sort_values(["study", "seed"])
    assert main.groupby("seed")["auroc"].nunique().eq(1).all()  # one model, both studies
    assert dict(zip(table.variant, table.n_guide, strict=True))["guide0.5"] == 9
    with pytest.raises(ValueError, match="variants"):
        run_guidance_study_stage(
            stays=cohort.stays,
            timeseries=cohort.timeseries,
            selection=root / "selection.json",
            synthetic=synthetic[:-1],
            summaries=summaries,
            variants=variants,
            dataset="d",
            task=TASK,
            out=root / "x.csv",
            studies=STUDIES,
            main_source="all",
            evaluation=s["evaluation"],
            device="cpu",
        )


def test_efficiency_rows(tmp_path):
    root = tmp_path / "results"
    paths = []
    for job, task, s, rss in (
        ("train_classifier", "t", 2.0, 100),
        ("generate_tardiff_w0.1", "t", 3.0, 50),
        ("generate_tardiff_w0.3", "t", 5.0, 70),
        ("generate_classifier_guidance_w0.1_final", "t", 1.0, 40),
        ("extract_cohort", None, 1.5, 10),
    ):
        path = Path(Layout(str(root)).benchmark("d", job, task))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\th:m:s\tmax_rss\n{s}\t0:00:0{int(s)}\t{rss}\n")
        paths.append(path)
    stages = stage_rows(paths).set_index("stage")
    assert stages.loc["generate (tardiff)", ["jobs", "wall_s", "max_rss_mb"]].tolist() == [
        2,
        8.0,
        70,
    ]
    assert stages.loc["generate (classifier_guidance)", "jobs"] == 1
    assert stages.loc["extract_cohort", "task"] == ""
    records = []
    for method, wall in (("conditional", 2.0), ("tardiff", 3.0)):
        path = Path(Layout(str(root)).synthetic("d", "t", method, 0.1, 3).settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(
            {
                "method": method,
                "n_samples": 100,
                "wall_s": wall,
                "steps": 20,
                "grid_steps": 20,
                "sampler": "ddim",
                "peak_rss_mb": 10.0,
            },
            path,
        )
        records.append(path)
    rows = sampling_rows({("d", "t"): records}).set_index("stage")
    assert "1.50x" in rows.loc["sampling (tardiff)", "note"]
    assert "50.0 samples/s" in rows.loc["sampling (conditional)", "note"]
    write_json(
        {"wall_s": 0.5, "peak_rss_mb": 20.0, "n_guide": 9, "n_params": 100},
        tmp_path / "summary.json",
    )
    out = TableFiles(str(tmp_path / "e.md"), str(tmp_path / "e.csv"))
    table = run_efficiency_stage(
        benchmarks=paths,
        pairs=["d/t"],
        influence=[tmp_path / "summary.json"],
        records=records,
        out=out,
    )
    assert len(table) == 4 + 1 + 2 and Path(out.md).read_text().count("\n") > 6
    with pytest.raises(ValueError, match="not a generation record"):
        run_efficiency_stage(benchmarks=paths, pairs=["d/x"], influence=[tmp_path / "summary.json"],
                             records=records, out=out)  # fmt: skip
    bad = tmp_path / "bad.tsv"
    bad.write_text("x\n1\n")
    with pytest.raises(ValueError, match="bad.tsv"):
        stage_rows([bad])


def test_sampling_rows_count_the_denoiser_evaluations_of_every_method(tmp_path):
    records = []
    for method, extra in (
        ("conditional", {}),
        ("cfg", {}),
        ("influence_filter", {"filter_factor": 4}),
    ):
        path = tmp_path / f"{method}.json"
        write_json({"method": method, "n_samples": 10, "wall_s": 1.0, "steps": 25,
                    "grid_steps": 20, "sampler": "dpm_solver++", "peak_rss_mb": 1.0, **extra},
                   path)  # fmt: skip
        records.append(path)
    notes = sampling_rows({("d", "t"): records}).set_index("stage")["note"]
    assert "dpm_solver++, 20 denoiser" in notes["sampling (conditional)"]  # steps taken, not asked
    assert "2 x 20 denoiser" in notes["sampling (cfg)"]
    assert "4 x 20 denoiser" in notes["sampling (influence_filter)"]
