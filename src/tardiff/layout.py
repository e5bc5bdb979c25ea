"""Every artifact path of the workflow, defined once.

The Snakemake rules, the ``tardiff`` command and the tests take their paths from here; stage
functions receive these paths explicitly and never build file names themselves. Arguments may be
concrete values or Snakemake wildcards (``"{dataset}"``), so the same call gives a rule's pattern
and a concrete path. The results root is the config's ``results_dir``.

``results/<dataset>/``:
  ``raw/``                        embedded demo's raw tables
  ``cohort/``                     stays.parquet, timeseries.parquet, summary.json
  ``external/raw/``, ``external/cohort/``  the external test population's (all stays test stays)
  ``<task>/classifier/``          model.pt, metrics.json
  ``<task>/influence/``           G.pt, grad_norms.csv, summary.json
  ``<task>/diffusion/``           model.pt, loss.csv, loss.png
  ``<task>/synthetic/<method>/w<scale>/``  seed<k>.parquet, seed<k>.json, seed<k>_diagnostics.csv
  ``<task>/synthetic/jitter/``    seed<k>.parquet, seed<k>.json (the non-generative baseline)
  ``<task>/selection.json``       guidance scales scored on validation ``select``, the choice
  ``<task>/evaluation/``          utility.csv, paired.csv, predictions.parquet (every model's
                                  internal test scores), fidelity.csv, privacy.csv;
                                  paired_folds.csv (paired differences pooled over the folds)
  ``<task>/studies/``             scale_sweep.csv, guidance.csv; ``<variant>/influence/`` and
                                  ``<variant>/synthetic/w<scale>/``: a study variant's G, samples
  ``logs/``, ``benchmarks/``      one file per job
  ``manifest.json``               size and SHA-256 of every output

``results/<dataset>-train<fraction>/``: the data-scarcity study's copy of a dataset whose train
split keeps ``fraction`` of its stays (same layout). ``results/<dataset>-cv<repeat>.<fold>/``: the
cohort split for one cross-validation fold (same layout). ``results/metrics/``,
``results/figures/``, ``results/tables/``: every dataset's tidy metrics (utility, paired
differences, fidelity, privacy, guidance studies; ``summary.json`` and ``curves/``, what DVC shows
of them), the figures and the tables; ``results/README.md``: the verdict table and the headline,
generated with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from tardiff.methods import scale_guided
from tardiff.names import scale_tag
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


class JitterFiles(NamedTuple):
    samples: str
    settings: str


def seed_outputs(per_seed: dict[int, Any]) -> dict[str, str]:
    """Named outputs (``<field>_seed<k>``) of a job that writes a file set per seed."""
    return {f"{f}_seed{k}": p for k, files in per_seed.items() for f, p in files._asdict().items()}


def seed_files(cls: type, outputs: Any, seed: int) -> Any:
    """Seed ``seed``'s ``cls`` file set from such a job's named outputs (``snakemake.output``)."""
    return cls(*(outputs[f"{f}_seed{seed}"] for f in cls._fields))


class EvaluationFiles(NamedTuple):
    utility: str
    paired: str
    predictions: str


class MetricsFiles(NamedTuple):
    """Every dataset's tidy tables, collected (``results/metrics/``)."""

    utility: str
    paired: str
    fidelity: str
    privacy: str
    sweep: str
    guidance: str


class CurveFiles(NamedTuple):
    """Long tables ``series, <x>, auprc`` that ``dvc plots`` draws (``results/metrics/curves/``)."""

    tsrtr: str
    scarcity: str
    sweep: str


class StudyFiles(NamedTuple):
    """Outputs of the guidance studies of one dataset and task."""

    sweep: str
    guidance: str


class StudyReportFiles(NamedTuple):
    """Figures and tables of the fidelity, privacy and guidance studies."""

    fig3_png: str
    fig3_pdf: str
    fig4_png: str
    fig4_pdf: str
    table3_md: str
    table3_csv: str
    table5_md: str
    table5_csv: str
    fidelity_md: str
    fidelity_csv: str


class FigureFiles(NamedTuple):
    png: str
    pdf: str


class TableFiles(NamedTuple):
    md: str
    csv: str


class ReportFiles(NamedTuple):
    """Figures (PNG + PDF) and tables (Markdown + CSV) of the utility evaluation."""

    fig2_png: str
    fig2_pdf: str
    scarcity_png: str
    scarcity_pdf: str
    selection_png: str
    selection_pdf: str
    table1_md: str
    table1_csv: str
    paired_md: str
    paired_csv: str
    table4_md: str
    table4_csv: str
    verdict_md: str
    verdict_csv: str
    readme: str


_COHORT_NAMES = ("stays.parquet", "timeseries.parquet", "summary.json")


_INFLUENCE_NAMES = ("G.pt", "grad_norms.csv", "summary.json")


def _in(folder: str, cls: type, *names: str) -> Any:
    return cls(*(f"{folder}/{n}" for n in names))


def _synthetic_in(folder: str, seed: int | str) -> SyntheticFiles:
    """One seed's samples, settings record and diagnostics in ``folder``."""
    names = (f"seed{seed}.parquet", f"seed{seed}.json", f"seed{seed}_diagnostics.csv")
    return _in(folder, SyntheticFiles, *names)


@dataclass(frozen=True)
class Layout:
    """Paths under one results root (``results_dir`` of the config)."""

    root: str = "results"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Layout:
        return cls(str(config["results_dir"]).rstrip("/"))

    def dataset_dir(self, dataset: str) -> str:
        return f"{self.root}/{dataset}"

    def raw(self, dataset: str, external: bool = False) -> str:
        """Folder of the embedded demo's raw tables (``external``: its external population's)."""
        return f"{self.dataset_dir(dataset)}/{'external/' * external}raw"

    def raw_input(self, dataset: str, entry: DatasetSettings, external: bool = False) -> str:
        """What extraction reads: the demo folder, the user's ``raw_dir`` or a YAIB ``path``
        (``entry``: :meth:`~tardiff.settings.DatasetSettings.external_entry` if ``external``)."""
        if entry.uses_demo:
            return self.raw(dataset, external)
        return str(entry.files)

    def cohort(self, dataset: str, external: bool = False) -> CohortFiles:
        """The cohort tables (``external``: the external test population's, all stays test)."""
        return CohortFiles.in_dir(f"{self.dataset_dir(dataset)}/{'external/' * external}cohort")

    def cohort_inputs(self, dataset: str, external: bool = False) -> dict[str, str]:
        """What every model stage reads of the cohort (the summary is for people); the
        evaluation's of the external population are named ``external_stays`` and so on."""
        cohort, prefix = self.cohort(dataset, external), "external_" * external
        return {f"{prefix}stays": cohort.stays, f"{prefix}timeseries": cohort.timeseries}

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
        return _in(folder, InfluenceFiles, *_INFLUENCE_NAMES)

    def diffusion(self, dataset: str, task: str) -> DiffusionFiles:
        folder = f"{self.task_dir(dataset, task)}/diffusion"
        return _in(folder, DiffusionFiles, "model.pt", "loss.csv", "loss.png")

    def synthetic(
        self, dataset: str, task: str, method: str, scale: float | str, seed: int | str
    ) -> SyntheticFiles:
        """Samples of a diffusion ``method`` at guidance ``scale`` (0 for ``conditional``)."""
        folder = f"{self.task_dir(dataset, task)}/synthetic/{method}/w{scale_tag(scale)}"
        return _synthetic_in(folder, seed)

    def synthetic_seeds(
        self, dataset: str, task: str, method: str, scale: float | str, seeds: list[int]
    ) -> dict[str, str]:
        """Every seed's files of one generation job (:func:`seed_outputs`)."""
        return seed_outputs({k: self.synthetic(dataset, task, method, scale, k) for k in seeds})

    def jitter_seeds(self, dataset: str, task: str, seeds: list[int]) -> dict[str, str]:
        """Every seed's files of one jitter job (:func:`seed_outputs`)."""
        return seed_outputs({k: self.jitter(dataset, task, k) for k in seeds})

    def jitter(self, dataset: str, task: str, seed: int | str) -> JitterFiles:
        folder = f"{self.task_dir(dataset, task)}/synthetic/jitter"
        return _in(folder, JitterFiles, f"seed{seed}.parquet", f"seed{seed}.json")

    def draw(self, dataset: str, task: str, method: str, scale: float | None, seed: int) -> str:
        """Samples of one synthetic draw of the evaluation: ``jitter`` (scale None), or a
        diffusion method at ``scale``, where a scale-guided method at scale 0 is conditional
        sampling (:func:`tardiff.methods.scale_guided`; unguided methods keep their path)."""
        if method == "jitter":
            return self.jitter(dataset, task, seed).samples
        method = "conditional" if scale == 0 and scale_guided(method) else method
        return self.synthetic(dataset, task, method, scale, seed).samples

    def selection(self, dataset: str, task: str) -> str:
        """Guidance scales scored on validation ``select`` and the chosen one per method."""
        return f"{self.task_dir(dataset, task)}/selection.json"

    def evaluation(self, dataset: str, task: str) -> EvaluationFiles:
        folder = f"{self.task_dir(dataset, task)}/evaluation"
        return _in(folder, EvaluationFiles, "utility.csv", "paired.csv", "predictions.parquet")

    def pooled(self, dataset: str, task: str) -> str:
        """Paired differences pooled over the cross-validation folds of a dataset."""
        return f"{self.task_dir(dataset, task)}/evaluation/paired_folds.csv"

    def fidelity(self, dataset: str, task: str) -> str:
        return f"{self.task_dir(dataset, task)}/evaluation/fidelity.csv"

    def privacy(self, dataset: str, task: str) -> str:
        return f"{self.task_dir(dataset, task)}/evaluation/privacy.csv"

    def studies(self, dataset: str, task: str) -> StudyFiles:
        folder = f"{self.task_dir(dataset, task)}/studies"
        return _in(folder, StudyFiles, "scale_sweep.csv", "guidance.csv")

    def variant_influence(self, dataset: str, task: str, variant: str) -> InfluenceFiles:
        """G of a guidance-study variant (a guide subsample or another source)."""
        folder = f"{self.task_dir(dataset, task)}/studies/{variant}/influence"
        return _in(folder, InfluenceFiles, *_INFLUENCE_NAMES)

    def variant_synthetic(
        self, dataset: str, task: str, variant: str, scale: float | str, seed: int | str
    ) -> SyntheticFiles:
        """``tardiff`` samples guided by a variant's G."""
        folder = f"{self.task_dir(dataset, task)}/studies/{variant}/synthetic/w{scale_tag(scale)}"
        return _synthetic_in(folder, seed)

    def variant_seeds(
        self, dataset: str, task: str, variant: str, scale: float | str, seeds: list[int]
    ) -> dict[str, str]:
        """Every seed's files of one variant generation job (:func:`seed_outputs`)."""
        return seed_outputs(
            {k: self.variant_synthetic(dataset, task, variant, scale, k) for k in seeds}
        )

    def metrics(self) -> MetricsFiles:
        names = ("utility", "paired", "fidelity", "privacy", "scale_sweep", "guidance_studies")
        return _in(f"{self.root}/metrics", MetricsFiles, *(f"{n}.csv" for n in names))

    def metrics_summary(self) -> str:
        """Mean test AUROC / AUPRC per dataset, task and method (``dvc metrics``)."""
        return f"{self.root}/metrics/summary.json"

    def metrics_curves(self) -> CurveFiles:
        folder = f"{self.root}/metrics/curves"
        return _in(folder, CurveFiles, "tsrtr_ratio.csv", "scarcity.csv", "scale_sweep.csv")

    def study_report(self) -> StudyReportFiles:
        fig, tab = f"{self.root}/figures", f"{self.root}/tables"
        return StudyReportFiles(
            *(f"{fig}/{name}.{ext}" for name in ("fig3_scale_sweep", "fig4_guidance_size")
              for ext in ("png", "pdf")),
            *(f"{tab}/{name}.{ext}" for name in
              ("table3_grad_norms", "table5_guidance_source", "fidelity_privacy")
              for ext in ("md", "csv")),
        )  # fmt: skip

    def samples_figure(self, dataset: str, task: str) -> FigureFiles:
        """Fig. 5 of one dataset and task: real vs synthetic trajectories and PCA."""
        stem = f"{self.root}/figures/fig5_samples_{dataset}_{task}"
        return FigureFiles(f"{stem}.png", f"{stem}.pdf")

    def efficiency(self) -> TableFiles:
        stem = f"{self.root}/tables/efficiency"
        return TableFiles(f"{stem}.md", f"{stem}.csv")

    def report(self) -> ReportFiles:
        fig, tab = f"{self.root}/figures", f"{self.root}/tables"
        return ReportFiles(
            *(f"{fig}/{name}.{ext}" for name in ("fig2_tsrtr_ratio", "scarcity", "scale_selection")
              for ext in ("png", "pdf")),
            *(f"{tab}/{name}.{ext}" for name in ("table1_trtr_tstr", "paired", "table4_minority_f1",
                                                  "verdict") for ext in ("md", "csv")),
            f"{self.root}/README.md",
        )  # fmt: skip

    def manifest(self, dataset: str) -> str:
        return f"{self.dataset_dir(dataset)}/manifest.json"

    def run_log(self, job: str) -> str:
        """Log file of a job over every dataset (metrics, report)."""
        return f"{self.root}/logs/{job}.log"

    def log(self, dataset: str, job: str, task: str | None = None) -> str:
        """Log file of one job (``job`` names the rule and any wildcards beyond the task)."""
        return self._job_file(dataset, "logs", job, task, "log")

    def benchmark(self, dataset: str, job: str, task: str | None = None) -> str:
        """Snakemake benchmark TSV of one job."""
        return self._job_file(dataset, "benchmarks", job, task, "tsv")

    def _job_file(self, dataset: str, kind: str, job: str, task: str | None, ext: str) -> str:
        task_part = "" if task is None else f"{task}/"
        return f"{self.dataset_dir(dataset)}/{kind}/{task_part}{job}.{ext}"
