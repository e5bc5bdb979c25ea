# Config, layout and resources of every rule; target lists and input functions only.
# All logic lives in the tardiff package.
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from tardiff.config import cross_validated, scarcity_tasks, study_pairs, validate_config
from tardiff.demo import external_seed
from tardiff.inputs import check_inputs
from tardiff.io import read_json
from tardiff.evaluate.downstream.sets import (
    evaluation_draws,
    generation_draws,
    selection_draws,
)
from tardiff.evaluate.studies.stage import MAIN, study_draws, study_scale, sweep_draws
from tardiff.generate import METHODS as DIFFUSION_METHODS
from tardiff.layout import Layout
from tardiff.names import (
    FOLD_TAG,
    SCARCITY_TAG,
    fold_dataset,
    parse_dataset,
    parse_fold,
    parse_variant,
    scale_tag,
    scarcity_dataset,
)
from tardiff.provenance import source_hash
from tardiff.runtime import available_mem_mb, quiet_thread_waits, training_threads
from tardiff.settings import DatasetSettings, ScaleGrids, StudySettings

# Idle torch (OpenMP) workers of every job sleep instead of spinning (OMP_WAIT_POLICY, unless
# set already): jobs inherit this process's environment (docs/performance.md, threads).
quiet_thread_waits()
CFG = validate_config(
    config
)  # the one validation: schema, defaults, per-dataset defaults
# features and raw data folders, as `tardiff validate-config` checks them: fail before any job
check_inputs(CFG)
LAYOUT = Layout.from_config(CFG)
DATASETS = CFG["datasets"]
ENTRIES = {d: DatasetSettings.from_config(e) for d, e in DATASETS.items()}
# dataset -> its external test population (the datasets that have one)
EXTERNAL = {d: e.external for d, e in ENTRIES.items() if e.external is not None}
METHODS = tuple(CFG["generation"]["methods"])
SCALES = ScaleGrids.from_config(CFG["generation"]["scales"])
N_SEEDS = CFG["evaluation"]["seeds"]
SEEDS = list(range(N_SEEDS))
# The largest minority-only multiple: generation tops the minority class up to it.
MINORITY_MULTIPLE = max([1.0, *CFG["evaluation"]["minority_multiples"]])
# (dataset, task) pairs: the config's, then the data-scarcity study's reduced copies.
BASE_PAIRS = [(d, t) for d in DATASETS for t in DATASETS[d]["tasks"]]
# dataset -> tasks of the scarcity study (its reduced copies are stratified by them)
SCARCITY_TASKS = scarcity_tasks(CFG)
SCARCITY_PAIRS = [
    (scarcity_dataset(d, f), t)
    for d, tasks in SCARCITY_TASKS.items()
    for f in CFG["evaluation"]["scarcity"]["fractions"]
    if f < 1
    for t in tasks
]
# dataset -> its cross-validation fold copies (split.folds; the datasets without an external
# population), and their pairs: every model stage runs on each copy, the paired rows are pooled
SPLIT = CFG["split"]
FOLD_COPIES = {
    d: [fold_dataset(d, r, f) for r in range(1, SPLIT["repeats"] + 1)
        for f in range(1, SPLIT["folds"] + 1)]
    for d in cross_validated(CFG)
}  # fmt: skip
FOLD_PAIRS = [(c, t) for d, copies in FOLD_COPIES.items() for c in copies for t in DATASETS[d]["tasks"]]  # fmt: skip
PAIRS = BASE_PAIRS + SCARCITY_PAIRS + FOLD_PAIRS
# the pairs evaluated on their own (every pair but the fold copies, which are pooled)
SINGLE_PAIRS = BASE_PAIRS + SCARCITY_PAIRS
POOLED_PAIRS = [(d, t) for d in FOLD_COPIES for t in DATASETS[d]["tasks"]]
# the guidance studies (scale sweep, guidance-set size and source) and their variants of G
STUDY_PAIRS = study_pairs(CFG)
STUDIES = StudySettings.from_config(CFG["studies"])
MAIN_SOURCE = CFG["influence"]["source"]
VARIANTS = study_draws(STUDIES, MAIN_SOURCE)

# Memory (MiB) per job: the peak RSS measured on the default config (docs/performance.md) with headroom.
# Stages estimate their need before allocating and fail with a message above it; raise it for
# larger cohorts with --set-resources RULE:mem_mb=N.
MEM_MB = {
    "demo_raw": 1000,  # measured 491
    "extract_cohort": 1500,  # 410; DuckDB is capped at 1 GB (benchmarks/extraction.py)
    "train_classifier": 1000,  # 557
    "influence": 1000,  # 509; 288 steps x 2000 stays: 762 (benchmarks/influence_memory.py)
    "train_diffusion": 1500,  # 845
    "generate": 1000,  # 632
    "jitter": 1000,  # numpy only, below the generation stage's
    "select_scales": 1500,  # 674
    "evaluate": 1500,  # 722; models train in chunks sized to what the data leave
    "fidelity": 1500,
    "privacy": 1000,
    "scale_sweep": 1500,
    "guidance_study": 1500,
    "report": 1000,
}


def diffusion_threads(wildcards):
    """Threads of a diffusion-training job: the cores shared by the config's (dataset, task)
    pairs (tardiff.runtime.training_threads, which the `tardiff` command uses too)."""
    return training_threads(workflow.cores, len(PAIRS))


# Locally, Snakemake bounds memory only when told how much there is: default to what this
# machine has available, so jobs whose mem_mb add up to more are never run side by side.
if workflow.local_exec and workflow.global_resources.get("mem_mb").value is None:
    workflow.register_resource("mem_mb", available_mem_mb())


BASE_DATASET = "|".join(DATASETS)


wildcard_constraints:
    dataset=f"({BASE_DATASET})({SCARCITY_TAG}[0-9.e-]+|{FOLD_TAG}[0-9]+\\.[0-9]+)?",
    task="[A-Za-z0-9_]+",
    method="|".join(DIFFUSION_METHODS),
    scale=r"-?[0-9.e+-]+",
    seed=r"\d+",
    variant=r"guide[0-9.e-]+|source-[a-z]+",


def raw_input(wildcards):
    return LAYOUT.raw_input(wildcards.dataset, ENTRIES[wildcards.dataset])


def external_raw_input(wildcards):
    entry = ENTRIES[wildcards.dataset].external_entry()
    return LAYOUT.raw_input(wildcards.dataset, entry, external=True)


def external_inputs(wildcards):
    """The external population's cohort the evaluation scores (none if the dataset has none)."""
    base = parse_dataset(wildcards.dataset)[0]
    return LAYOUT.cohort_inputs(base, external=True) if base in EXTERNAL else {}


def selection_inputs(wildcards):
    """Samples of every scale of every guided method's grid (and the conditional ones)."""
    keys = selection_draws(METHODS, SCALES, N_SEEDS)
    return [LAYOUT.draw(wildcards.dataset, wildcards.task, *key) for key in keys]


def evaluation_inputs(wildcards):
    """Samples of each method at the scale chosen on validation (after the selection ran)."""
    selection = checkpoints.select_scales.get(**wildcards).output[0]
    chosen = {m: v["chosen"] for m, v in read_json(selection)["methods"].items()}
    keys = evaluation_draws(METHODS, chosen, N_SEEDS)
    return [LAYOUT.draw(wildcards.dataset, wildcards.task, *key) for key in keys]


def sweep_inputs(wildcards):
    """Samples and generation records of every scale of the sweep (conditional at 0)."""
    keys = sweep_draws(
        METHODS, SCALES, STUDIES.sweep_scales, STUDIES.sweep_methods, N_SEEDS
    )
    files = [LAYOUT.synthetic(wildcards.dataset, wildcards.task,
                              "conditional" if w == 0 else m, w, k) for m, w, k in keys]  # fmt: skip
    return {
        "synthetic": [f.samples for f in files],
        "records": [f.settings for f in files],
    }


def guidance_study_inputs(wildcards):
    """Samples of the main G and of every variant at the study scale (after the selection ran),
    and each one's influence summary."""
    d, t = wildcards.dataset, wildcards.task
    scale = study_scale(read_json(checkpoints.select_scales.get(**wildcards).output[0]))
    samples = [LAYOUT.synthetic(d, t, "tardiff", scale, k).samples for k in SEEDS]
    for v in VARIANTS:
        samples += [LAYOUT.variant_synthetic(d, t, v, scale, k).samples for k in SEEDS]
    summaries = [LAYOUT.influence(d, t).summary]
    summaries += [LAYOUT.variant_influence(d, t, v).summary for v in VARIANTS]
    return {"synthetic": samples, "summaries": summaries}


def variant_influence_settings(wildcards):
    """The influence section with a variant's guidance source."""
    source, _ = parse_variant(wildcards.variant)
    return {**CFG["influence"], "source": source or MAIN_SOURCE}


def fold_predictions(wildcards):
    """Every fold copy's model scores of one dataset and task, in fold order."""
    copies = FOLD_COPIES[wildcards.dataset]
    return [LAYOUT.evaluation(c, wildcards.task).predictions for c in copies]


def pair_targets(dataset, task):
    """Every model, sample and evaluation file of one (dataset, task) pair."""
    targets = [*LAYOUT.classifier(dataset, task), *LAYOUT.influence(dataset, task)]
    targets += LAYOUT.diffusion(dataset, task)
    for method, scale, seed in generation_draws(METHODS, SCALES, N_SEEDS):
        targets += LAYOUT.synthetic(dataset, task, method, scale, seed)
    for seed in SEEDS:
        targets += LAYOUT.jitter(dataset, task, seed)
    targets += [LAYOUT.selection(dataset, task), *LAYOUT.evaluation(dataset, task)]
    if (dataset, task) in BASE_PAIRS:
        targets += [LAYOUT.fidelity(dataset, task), LAYOUT.privacy(dataset, task)]
    if (dataset, task) in STUDY_PAIRS:
        targets += LAYOUT.studies(dataset, task)
    return targets


def dataset_targets(dataset):
    """Every output of a dataset, its data-scarcity copies included (the manifest's list)."""
    targets = list(LAYOUT.cohort(dataset))
    if dataset in EXTERNAL:
        targets += LAYOUT.cohort(dataset, external=True)
    targets += [LAYOUT.pooled(d, t) for d, t in POOLED_PAIRS if d == dataset]
    for d, t in PAIRS:
        if parse_dataset(d)[0] == dataset:
            targets += pair_targets(d, t) + (
                list(LAYOUT.cohort(d)) if d != dataset else []
            )
    return targets


def metrics_inputs():
    """Every pair's tidy tables, by kind (the fields of ``MetricsFiles``)."""
    return {
        "utility": [LAYOUT.evaluation(d, t).utility for d, t in PAIRS],
        "paired": [LAYOUT.evaluation(d, t).paired for d, t in SINGLE_PAIRS]
        + [LAYOUT.pooled(d, t) for d, t in POOLED_PAIRS],
        "fidelity": [LAYOUT.fidelity(d, t) for d, t in BASE_PAIRS],
        "privacy": [LAYOUT.privacy(d, t) for d, t in BASE_PAIRS],
        "sweep": [LAYOUT.studies(d, t).sweep for d, t in STUDY_PAIRS],
        "guidance": [LAYOUT.studies(d, t).guidance for d, t in STUDY_PAIRS],
    }


def efficiency_inputs():
    """Benchmark files of every job of the main pairs, their influence summaries and
    generation records."""
    benchmarks = [LAYOUT.benchmark(d, "extract_cohort") for d in DATASETS]
    benchmarks += [
        LAYOUT.benchmark(d, "demo_raw") for d in DATASETS if ENTRIES[d].uses_demo
    ]
    benchmarks += [LAYOUT.benchmark(d, "extract_external") for d in EXTERNAL]
    benchmarks += [LAYOUT.benchmark(d, "external_demo_raw") for d in EXTERNAL
                   if ENTRIES[d].external_entry().uses_demo]  # fmt: skip
    generated = {(m, w) for m, w, _ in generation_draws(METHODS, SCALES, N_SEEDS)}
    jobs = ["train_classifier", "influence", "train_diffusion", "select_scales", "evaluate",
            "fidelity", "privacy", *(f"generate_{m}_w{scale_tag(w)}" for m, w in sorted(generated))]  # fmt: skip
    benchmarks += [LAYOUT.benchmark(d, job, t) for d, t in BASE_PAIRS for job in jobs]
    records = [LAYOUT.synthetic(d, t, m, w, k).settings for d, t in BASE_PAIRS
               for m, w, k in generation_draws(METHODS, SCALES, N_SEEDS)]  # fmt: skip
    return {
        "benchmarks": benchmarks,
        "influence": [LAYOUT.influence(d, t).summary for d, t in BASE_PAIRS],
        "records": records,
    }


def all_targets():
    return [
        *(LAYOUT.manifest(dataset) for dataset in DATASETS),
        *LAYOUT.metrics(),
        LAYOUT.metrics_summary(),
        *LAYOUT.metrics_curves(),
        *LAYOUT.report(),
        *LAYOUT.study_report(),
        *(f for d, t in BASE_PAIRS for f in LAYOUT.samples_figure(d, t)),
        *LAYOUT.efficiency(),
    ]


def section(name):
    """One validated config section (a params value, so Snakemake reruns a rule when it changes)."""
    return CFG[name]


# report category of each study output (snakemake --report)
STUDY_CATEGORY = {
    **dict.fromkeys(
        ("fig3_png", "fig3_pdf", "fig4_png", "fig4_pdf"), "Guidance studies"
    ),
    **dict.fromkeys(
        ("table3_md", "table3_csv", "table5_md", "table5_csv"), "Guidance studies"
    ),
    **dict.fromkeys(("fidelity_md", "fidelity_csv"), "Fidelity and privacy"),
}


def report_caption(output_name):
    """Caption file of a report output (``fig2_png`` -> ``../report/fig2.rst``)."""
    return f"../report/{output_name.rsplit('_', 1)[0]}.rst"
