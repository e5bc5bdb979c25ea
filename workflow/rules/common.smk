# Config, layout and resources of every rule; target lists and input functions only.
# All logic lives in the tardiff package.
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from tardiff.cli import plan
from tardiff.config import scarcity_tasks, study_pairs, validate_config
from tardiff.demo import external_seed
from tardiff.inputs import check_inputs
from tardiff.io import read_json
from tardiff.evaluate.studies.stage import MAIN, study_scale
from tardiff.generate import METHODS as DIFFUSION_METHODS
from tardiff.methods import scale_guided
from tardiff.layout import Layout
from tardiff.names import (
    FOLD_TAG,
    SCARCITY_TAG,
    parse_dataset,
    parse_variant,
)
from tardiff.provenance import source_hash
from tardiff.runtime import available_mem_mb, quiet_thread_waits, training_threads
from tardiff.settings import DatasetSettings

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
METHODS = plan.methods(CFG)
N_SEEDS = plan.n_seeds(CFG)
SEEDS = list(range(N_SEEDS))
# the first seeds choose the scales and run the guidance studies; the later ones are drawn at
# the chosen scales only (evaluation.selection_seeds)
SELECTION_SEEDS = SEEDS[: plan.selection_seeds(CFG)]
FINAL_SEEDS = SEEDS[len(SELECTION_SEEDS) :]
# The largest minority-only multiple: generation tops the minority class up to it.
MINORITY_MULTIPLE = plan.minority_multiple(CFG)
# (dataset, task) pairs: the config's; with the data-scarcity study's reduced copies, the pairs
# evaluated on their own; the cross-validation fold copies of the datasets without an external
# population (split.folds), whose paired rows are pooled; and all of them (every model stage).
BASE_PAIRS = plan.base_pairs(CFG)
# dataset -> tasks of the scarcity study (its reduced copies are stratified by them)
SCARCITY_TASKS = scarcity_tasks(CFG)
SINGLE_PAIRS = plan.single_pairs(CFG)
FOLD_COPIES = plan.fold_copies(CFG)
POOLED_PAIRS = plan.pooled_pairs(CFG)
PAIRS = plan.pairs(CFG)
# the guidance studies (scale sweep, guidance-set size and source) and their variants of G
STUDY_PAIRS = study_pairs(CFG)
MAIN_SOURCE = CFG["influence"]["source"]
VARIANTS = plan.variants(CFG)

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
# the generate rule's methods (a scale grid) and generate_unguided's
GUIDED_METHODS = "|".join(m for m in DIFFUSION_METHODS if scale_guided(m))
UNGUIDED_METHODS = "|".join(m for m in DIFFUSION_METHODS if not scale_guided(m))


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
    return plan.selection_synthetic(CFG, LAYOUT, wildcards.dataset, wildcards.task)


def evaluation_inputs(wildcards):
    """Samples of each method at the scale chosen on validation (after the selection ran)."""
    checkpoints.select_scales.get(**wildcards)
    return plan.evaluation_synthetic(CFG, LAYOUT, wildcards.dataset, wildcards.task)


def sweep_inputs(wildcards):
    """Samples and generation records of every scale of the sweep (conditional at 0)."""
    d, t = wildcards.dataset, wildcards.task
    keys = plan.sweep_keys(CFG)
    files = [
        LAYOUT.synthetic(d, t, "conditional" if w == 0 else m, w, k) for m, w, k in keys
    ]
    return {
        "synthetic": [f.samples for f in files],
        "records": [f.settings for f in files],
    }


def guidance_study_inputs(wildcards):
    """Samples of the main G and of every variant at the study scale (after the selection ran),
    and each one's influence summary."""
    d, t = wildcards.dataset, wildcards.task
    scale = study_scale(read_json(checkpoints.select_scales.get(**wildcards).output[0]))
    seeds = SELECTION_SEEDS
    samples = [LAYOUT.synthetic(d, t, "tardiff", scale, k).samples for k in seeds]
    for v in VARIANTS:
        samples += [LAYOUT.variant_synthetic(d, t, v, scale, k).samples for k in seeds]
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


def selections_made(pairs):
    """Wait for the scale selection of ``pairs`` where later seeds are drawn at the chosen
    scales (their files are named after them)."""
    if FINAL_SEEDS:
        for d, t in pairs:
            checkpoints.select_scales.get(dataset=d, task=t)


def dataset_targets(dataset):
    """Every output of a dataset, its data-scarcity copies included (the manifest's list)."""
    selections_made([(d, t) for d, t in PAIRS if parse_dataset(d)[0] == dataset])
    return plan.dataset_targets(CFG, LAYOUT, dataset)


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


def efficiency_inputs(wildcards):
    """Benchmark files of every job of the main pairs, their influence summaries and
    generation records."""
    selections_made(BASE_PAIRS)
    return plan.efficiency_inputs(CFG, LAYOUT)


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
