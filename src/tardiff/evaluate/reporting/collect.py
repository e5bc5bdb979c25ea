"""Every dataset's tidy tables in one place, and the study figures and tables drawn from them.

:func:`collect_tables` concatenates the per-(dataset, task) CSV files of each kind (utility rows,
paired differences, fidelity, privacy, scale sweep, guidance studies) into ``results/metrics/``,
checking each file's columns; the paired differences, now all in one table, get the primary
comparison and Holm's adjustment of every other row
(:mod:`tardiff.evaluate.downstream.multiplicity`). :func:`write_study_report` draws the figures and
tables of the fidelity, privacy and guidance studies
(:mod:`tardiff.evaluate.reporting.study_figures`) from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tardiff.evaluate.downstream.multiplicity import ADJUSTED_COLUMNS, adjust
from tardiff.evaluate.downstream.utility import PAIRED_COLUMNS, UTILITY_COLUMNS
from tardiff.evaluate.quality.stage import FIDELITY_COLUMNS, PRIVACY_COLUMNS
from tardiff.evaluate.reporting import study_figures as figures
from tardiff.evaluate.studies.stage import GUIDANCE_COLUMNS, SWEEP_COLUMNS
from tardiff.io import read_json, write_csv
from tardiff.layout import MetricsFiles, StudyReportFiles
from tardiff.settings import PrimarySettings

#: columns of each table of ``MetricsFiles``
TABLES = {
    "utility": UTILITY_COLUMNS,
    "paired": PAIRED_COLUMNS,
    "fidelity": FIDELITY_COLUMNS,
    "privacy": PRIVACY_COLUMNS,
    "sweep": SWEEP_COLUMNS,
    "guidance": GUIDANCE_COLUMNS,
}
#: columns of the collected paired table: the per-dataset ones, then the adjustment's
COLLECTED_PAIRED_COLUMNS = [*PAIRED_COLUMNS, *ADJUSTED_COLUMNS]


def read_table(path: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """A tidy CSV whose columns must be exactly ``columns``."""
    frame = pd.read_csv(path)
    if list(frame.columns) != list(columns):
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected {list(columns)}")
    return frame


def collect_tables(
    *, inputs: dict[str, Sequence[str | Path]], out: MetricsFiles, primary: PrimarySettings
) -> None:
    """Concatenate each kind's per-pair files (``inputs[kind]``) into ``out``'s file; adjust the
    paired differences for ``primary`` and multiplicity."""
    for kind, columns in TABLES.items():
        frames = [read_table(p, columns) for p in inputs.get(kind, ())]
        frames = [f for f in frames if len(f)]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
        if kind == "paired":
            table = adjust(table, primary)[COLLECTED_PAIRED_COLUMNS]
        write_csv(table, getattr(out, kind))


def write_study_report(
    *,
    fidelity: str | Path,
    privacy: str | Path,
    sweep: str | Path,
    guidance: str | Path,
    influence: dict[str, str | Path],
    out: StudyReportFiles,
) -> None:
    """Fig. 3, Fig. 4, Tables 3 and 5 and the fidelity / privacy summary table from the collected
    tables; ``influence`` maps ``<dataset>/<task>`` to that pair's influence ``summary.json``."""
    paths = {"fidelity": fidelity, "privacy": privacy, "sweep": sweep, "guidance": guidance}
    tables = {kind: read_table(path, TABLES[kind]) for kind, path in paths.items()}
    figures.sweep_figure(sweep=tables["sweep"], png=out.fig3_png, pdf=out.fig3_pdf)
    figures.guidance_size_figure(studies=tables["guidance"], png=out.fig4_png, pdf=out.fig4_pdf)
    summaries = []
    for pair, path in influence.items():
        dataset, task = pair.split("/")
        summaries.append({**read_json(path), "dataset": dataset, "task": task})
    figures.table3(summaries=summaries, md=out.table3_md, csv=out.table3_csv)
    figures.table5(studies=tables["guidance"], md=out.table5_md, csv=out.table5_csv)
    figures.fidelity_privacy_table(
        fidelity=tables["fidelity"],
        privacy=tables["privacy"],
        md=out.fidelity_md,
        csv=out.fidelity_csv,
    )
