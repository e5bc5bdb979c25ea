# Config, layout and resources of every rule; target lists and input functions only.
# All logic lives in the tardiff package.
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from tardiff.config import validate_config
from tardiff.layout import Layout
from tardiff.provenance import source_hash
from tardiff.runtime import available_mem_mb
from tardiff.settings import DatasetSettings

CFG = validate_config(
    config
)  # the one validation: schema, defaults, per-dataset defaults
LAYOUT = Layout.from_config(CFG)
DATASETS = CFG["datasets"]
METHODS = CFG["generation"]["methods"]
SEEDS = CFG["generation"]["seeds"]
PAIRS = [(d, t) for d in DATASETS for t in DATASETS[d]["tasks"]]

# Memory (MiB) per job: the peak RSS measured on the default config (README) with headroom.
# Stages estimate their need before allocating and fail with a message above it; raise it for
# larger cohorts with --set-resources RULE:mem_mb=N.
MEM_MB = {
    "demo_raw": 1000,  # measured 491
    "extract_cohort": 1500,  # 410; DuckDB is capped at 1 GB (benchmarks/extraction.py)
    "train_classifier": 1000,  # 557
    "influence": 1000,  # 509; 288 steps x 2000 stays: 762 (benchmarks/influence_memory.py)
    "train_diffusion": 1500,  # 845
    "generate": 1000,  # 632
}


def requested_pairs():
    """(dataset, task) pairs of the datasets this run asks for (all without dataset targets)."""
    targets = workflow.dag_settings.targets if workflow.dag_settings else ()
    wanted = {d for d in DATASETS for t in targets if d in Path(t).parts}
    return [(d, t) for d, t in PAIRS if d in (wanted or DATASETS)]


def diffusion_threads(wildcards):
    """Threads of a diffusion-training job (the one that dominates a run): the cores shared by
    the (dataset, task) pairs that train side by side, so a one-pair run uses every core and
    parallel jobs do not oversubscribe them. Measured (benchmarks/threads.py, 2 cores): 2 threads
    train 1.3-1.5x faster than 1, so two 1-thread jobs side by side beat two 2-thread jobs in a
    row. The other torch jobs are short and take one thread, so they run side by side.
    """
    pairs = len(requested_pairs())
    return max(1, workflow.cores // max(1, min(pairs, workflow.cores)))


# Locally, Snakemake bounds memory only when told how much there is: default to what this
# machine has available, so jobs whose mem_mb add up to more are never run side by side.
if workflow.local_exec and workflow.global_resources.get("mem_mb").value is None:
    workflow.register_resource("mem_mb", available_mem_mb())


wildcard_constraints:
    dataset="|".join(DATASETS),
    task="[A-Za-z0-9_]+",
    method="|".join(METHODS),
    seed=r"\d+",


def raw_input(wildcards):
    entry = DatasetSettings.from_config(DATASETS[wildcards.dataset])
    return LAYOUT.raw_input(wildcards.dataset, entry)


def dataset_targets(dataset):
    targets = list(LAYOUT.cohort(dataset))
    for task in DATASETS[dataset]["tasks"]:
        targets += LAYOUT.classifier(dataset, task)
        targets += LAYOUT.influence(dataset, task)
        targets += LAYOUT.diffusion(dataset, task)
        for method in METHODS:
            for seed in SEEDS:
                targets += LAYOUT.synthetic(dataset, task, method, seed)
    return targets


def all_targets():
    return [LAYOUT.manifest(dataset) for dataset in DATASETS]


def section(name):
    """One validated config section (a params value, so Snakemake reruns a rule when it changes)."""
    return CFG[name]
