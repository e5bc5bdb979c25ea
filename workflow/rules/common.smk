# Target lists and input functions only; all logic lives in the tardiff package.
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from tardiff.config import n_steps, uses_demo, validate_config
from tardiff.provenance import source_hash

CFG = validate_config(config)
DATASETS = CFG["datasets"]
METHODS = CFG["generation"]["methods"]
SEEDS = CFG["generation"]["seeds"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    task="[A-Za-z0-9_]+",
    method="|".join(METHODS),
    seed=r"\d+",


def dataset_tasks(dataset):
    return list(DATASETS[dataset]["tasks"])


def raw_input(wildcards):
    entry = DATASETS[wildcards.dataset]
    if uses_demo(entry):
        return f"results/{wildcards.dataset}/raw"
    return entry["path"] if entry["source"] == "yaib" else entry["raw_dir"]


def dataset_targets(dataset):
    targets = [f"results/{dataset}/cohort/stays.parquet"]
    for task in dataset_tasks(dataset):
        targets += [
            f"results/{dataset}/{task}/classifier/model.pt",
            f"results/{dataset}/{task}/influence/G.pt",
            f"results/{dataset}/{task}/diffusion/model.pt",
        ]
        targets += expand(
            "results/{dataset}/{task}/synthetic/{method}/seed{seed}.parquet",
            dataset=dataset,
            task=task,
            method=METHODS,
            seed=SEEDS,
        )
    return targets


def all_targets():
    return [f"results/{dataset}/manifest.json" for dataset in DATASETS]


def settings(*sections):
    """The config sections a rule depends on (tracked by Snakemake as params)."""
    return {name: CFG[name] for name in sections}
