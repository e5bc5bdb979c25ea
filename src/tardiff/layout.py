"""Every artifact path of the workflow, defined once.

The Snakemake rules, the ``tardiff`` command and the tests take their paths from here; stage
functions receive these paths explicitly and never build file names themselves. Arguments may be
concrete values or Snakemake wildcards (``"{dataset}"``), so the same call gives a rule's pattern
and a concrete path. The results root is the config's ``results_dir``.

``results/<dataset>/``:
  ``raw/``                        embedded demo's raw tables
  ``cohort/``                     stays.parquet, timeseries.parquet, summary.json
  ``<task>/classifier/``          model.pt, metrics.json
  ``<task>/influence/``           G.pt, grad_norms.csv, summary.json
  ``<task>/diffusion/``           model.pt, loss.csv, loss.png
  ``<task>/synthetic/<method>/``  seed<k>.parquet, seed<k>.json, seed<k>_diagnostics.csv
  ``logs/``, ``benchmarks/``      one file per job
  ``manifest.json``               size and SHA-256 of every output
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tardiff.settings import DatasetSettings


class CohortFiles(NamedTuple):
    """Outputs of extraction, inputs of every model stage."""

    stays: str
    timeseries: str
    summary: str

    @classmethod
    def in_dir(cls, folder: str | Path) -> CohortFiles:
        """The cohort files inside ``folder`` (tests, benchmarks and hand-made cohorts)."""
        return _in(Path(folder).as_posix(), cls, *_COHORT_NAMES)


class ClassifierFiles(NamedTuple):
    model: str
    metrics: str


class InfluenceFiles(NamedTuple):
    G: str
    norms: str
    summary: str


class DiffusionFiles(NamedTuple):
    model: str
    loss: str
    plot: str


class SyntheticFiles(NamedTuple):
    samples: str
    settings: str
    diagnostics: str


_COHORT_NAMES = ("stays.parquet", "timeseries.parquet", "summary.json")


def _in(folder: str, cls: type, *names: str) -> Any:
    return cls(*(f"{folder}/{n}" for n in names))


@dataclass(frozen=True)
class Layout:
    """Paths under one results root (``results_dir`` of the config)."""

    root: str = "results"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layout:
        return cls(str(config["results_dir"]).rstrip("/"))

    def dataset_dir(self, dataset: str) -> str:
        return f"{self.root}/{dataset}"

    def raw(self, dataset: str) -> str:
        """Folder of the embedded demo's raw tables."""
        return f"{self.dataset_dir(dataset)}/raw"

    def raw_input(self, dataset: str, entry: DatasetSettings) -> str:
        """What extraction reads: the demo folder, the user's ``raw_dir`` or a YAIB ``path``."""
        if entry.uses_demo:
            return self.raw(dataset)
        return str(entry.path if entry.source == "yaib" else entry.raw_dir)

    def cohort(self, dataset: str) -> CohortFiles:
        return CohortFiles.in_dir(f"{self.dataset_dir(dataset)}/cohort")

    def cohort_inputs(self, dataset: str) -> dict[str, str]:
        """What every model stage reads of the cohort (the summary is for people)."""
        cohort = self.cohort(dataset)
        return {"stays": cohort.stays, "timeseries": cohort.timeseries}

    def generation_inputs(self, dataset: str, task: str) -> dict[str, str]:
        """Everything the generation stage reads."""
        return {
            **self.cohort_inputs(dataset),
            "diffusion": self.diffusion(dataset, task).model,
            "classifier": self.classifier(dataset, task).model,
            "influence": self.influence(dataset, task).G,
        }

    def task_dir(self, dataset: str, task: str) -> str:
        return f"{self.dataset_dir(dataset)}/{task}"

    def classifier(self, dataset: str, task: str) -> ClassifierFiles:
        folder = f"{self.task_dir(dataset, task)}/classifier"
        return _in(folder, ClassifierFiles, "model.pt", "metrics.json")

    def influence(self, dataset: str, task: str) -> InfluenceFiles:
        folder = f"{self.task_dir(dataset, task)}/influence"
        return _in(folder, InfluenceFiles, "G.pt", "grad_norms.csv", "summary.json")

    def diffusion(self, dataset: str, task: str) -> DiffusionFiles:
        folder = f"{self.task_dir(dataset, task)}/diffusion"
        return _in(folder, DiffusionFiles, "model.pt", "loss.csv", "loss.png")

    def synthetic(self, dataset: str, task: str, method: str, seed: int | str) -> SyntheticFiles:
        folder = f"{self.task_dir(dataset, task)}/synthetic/{method}"
        names = (f"seed{seed}.parquet", f"seed{seed}.json", f"seed{seed}_diagnostics.csv")
        return _in(folder, SyntheticFiles, *names)

    def manifest(self, dataset: str) -> str:
        return f"{self.dataset_dir(dataset)}/manifest.json"

    def log(self, dataset: str, job: str, task: str | None = None) -> str:
        """Log file of one job (``job`` names the rule and any wildcards beyond the task)."""
        return self._job_file(dataset, "logs", job, task, "log")

    def benchmark(self, dataset: str, job: str, task: str | None = None) -> str:
        """Snakemake benchmark TSV of one job."""
        return self._job_file(dataset, "benchmarks", job, task, "tsv")

    def _job_file(self, dataset: str, kind: str, job: str, task: str | None, ext: str) -> str:
        task_part = "" if task is None else f"{task}/"
        return f"{self.dataset_dir(dataset)}/{kind}/{task_part}{job}.{ext}"
