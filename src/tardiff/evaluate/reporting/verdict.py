"""The verdict table, the summary of the paired differences and the results README.

Read from the collected paired table (:mod:`tardiff.evaluate.downstream.multiplicity` has added the
primary comparison and the Holm-adjusted columns):

- :func:`verdict_table` (``tables/verdict``): per dataset and task of the main study, the primary
  comparison first, then, per evaluator, every method against ``real``, the imbalance
  corrections (``class_weight``, ``oversample``) and ``conditional`` in the primary's setting
  (protocol, ratio, metric, test set): Δ with its adjusted interval (the primary row: its own
  95 % interval), the p-value (Holm-adjusted; the primary's as it is) and the verdict: improves
  / no detectable difference / worse / same samples.
- :func:`paired_summary` (``tables/paired.md``): the verdict counts per test set, evaluator,
  baseline and metric, and the rows that improve or are worse after adjustment; the full table
  is the CSV.
- :func:`results_readme` (``<results>/README.md``): the verdict table at the top, then the
  headline read from it (:mod:`tardiff.evaluate.reporting.headline`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tardiff.evaluate.downstream.metrics import NO_DIFFERENCE, SAME_SAMPLES
from tardiff.evaluate.downstream.multiplicity import FAMILY_ALPHA
from tardiff.evaluate.reporting.headline import BEGIN, END, headline
from tardiff.evaluate.reporting.plotting import ORDERS, markdown_table, sort_rows
from tardiff.methods import CORRECTIONS, EVALUATORS

#: the verdicts, in the order tables count them
VERDICTS = ("improves", "worse", NO_DIFFERENCE, SAME_SAMPLES)
VERDICT_COLUMNS = ["dataset", "task", "test_set", "evaluator", "method", "baseline", "protocol",
                   "ratio", "metric", "delta", "delta_lo_adj", "delta_hi_adj", "p_holm",
                   "verdict_adj", "primary"]  # fmt: skip
_ORDERS = {**ORDERS, "test_set": ("internal", "external", "fold"), "evaluator": EVALUATORS}
#: the baselines of the verdict table's rows after the primary
VERDICT_BASELINES = ("real", *CORRECTIONS, "conditional")
VERDICT_TITLE = (
    "Verdict per task: the pre-registered primary comparison first (its own 95 % interval and "
    "p-value), then, per evaluator, each method against real, the imbalance corrections "
    "(class_weight, oversample) and conditional in the same setting, with Holm-adjusted "
    'intervals and p-values (docs/evaluation.md, "Primary comparison and multiplicity"). '
    "'same samples': the method chose guidance scale 0, so its samples are conditional's."
)
STATIC_TEXT = (
    "Everything here is produced by the workflow (`snakemake --cores all` or `dvc repro`) from\n"
    "the config, the code and the raw data, and is git-ignored: the layout of each dataset's\n"
    'folder is documented in docs/data.md ("Outputs"). Only small metric tables and\n'
    "figures of the default *demo* run are ever committed; nothing derived from credentialed\n"
    "MIMIC-III or eICU data may be committed. This file is written by the report\n"
    "(`tardiff.evaluate.reporting.verdict`): the verdict table is `tables/verdict.md`, the\n"
    "full paired differences `tables/paired.csv`."
)


def setting(protocol: str, ratio: float) -> str:
    """``TSRTR α=1``, ``minority ×2`` or ``TSTR``."""
    if protocol == "minority":
        return f"minority ×{format(float(ratio), 'g')}"
    return protocol if pd.isna(ratio) else f"{protocol} α={format(float(ratio), 'g')}"


def signed(value: float) -> str:
    """Three decimals with a sign (a true minus sign), never ``−0.000``."""
    return format(round(float(value), 3) + 0.0, "+.3f").replace("-", "−")


def p_text(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _same_setting(paired: pd.DataFrame, row: pd.Series) -> np.ndarray:
    ratio = paired["ratio"].to_numpy(float)
    keep = np.isnan(ratio) if pd.isna(row["ratio"]) else np.isclose(ratio, row["ratio"])
    for column in ("dataset", "task", "test_set", "protocol", "metric"):
        keep &= (paired[column] == row[column]).to_numpy()
    return keep & np.isclose(paired["fraction"].to_numpy(float), 1.0)


def verdict_table(paired: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and task with a primary row: that row, then every other method against
    ``real`` and ``conditional`` in its setting (module docstring)."""
    primary = paired["primary"].astype(bool).to_numpy()
    parts = []
    for _, rows in paired[primary].groupby(["dataset", "task"], sort=True):
        first = rows.iloc[0]
        others = _same_setting(paired, first) & ~primary
        others &= paired["baseline"].isin(VERDICT_BASELINES).to_numpy()
        by = ["evaluator", "baseline", "method"]
        parts += [rows.iloc[:1], sort_rows(paired[others], by, _ORDERS)]
    table = pd.concat(parts) if parts else pd.DataFrame(columns=VERDICT_COLUMNS)
    return table[VERDICT_COLUMNS].reset_index(drop=True)


def _task(frame: pd.DataFrame) -> pd.Series:
    label = frame["dataset"].astype(str) + " · " + frame["task"].astype(str)
    if "fraction" in frame:
        kept = frame["fraction"].map(lambda f: "" if np.isclose(f, 1.0) else f" (train {f:.0%})")
        label = label + kept
    return label


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """The cells of verdict rows (and of the summary's rows) as Markdown shows them."""
    cells = pd.DataFrame({
        "task": _task(table),
        "test set": table["test_set"],
        "evaluator": table["evaluator"],
        "comparison": table["method"] + " − " + table["baseline"],
        "setting": [f"{setting(p, r)} · {m.upper()}"
                    for p, r, m in zip(table["protocol"], table["ratio"], table["metric"],
                                       strict=True)],
        "Δ [interval]": [f"{signed(d)} [{signed(lo)}, {signed(hi)}]" for d, lo, hi in
                         zip(table["delta"], table["delta_lo_adj"], table["delta_hi_adj"],
                             strict=True)],
        "p": table["p_holm"].map(p_text),
        "verdict": table["verdict_adj"],
        "primary": table["primary"].astype(bool).map({True: "yes", False: ""}),
    })  # fmt: skip
    return cells.reset_index(drop=True)


def verdict_markdown(table: pd.DataFrame) -> list[str]:
    """The verdict table's Markdown: the title line, then the table."""
    return [VERDICT_TITLE, "", *markdown_table(shown(table))]


def paired_summary(paired: pd.DataFrame) -> list[str]:
    """The Markdown of ``tables/paired.md`` (module docstring)."""
    primary = paired["primary"].astype(bool)
    same = paired["verdict_adj"] == SAME_SAMPLES
    keys = ["test_set", "evaluator", "baseline", "metric"]
    groups = paired.groupby(keys, sort=False)["verdict_adj"]
    counts = groups.value_counts().unstack(fill_value=0).reindex(columns=list(VERDICTS))
    counts = counts.fillna(0).astype(int)
    counts.insert(0, "rows", groups.size())
    counts = sort_rows(counts.reset_index(), keys, _ORDERS)
    flagged = paired[paired["verdict_adj"].isin(["improves", "worse"]) | primary]
    by = ["dataset", "task", "test_set", "evaluator", "baseline", "method"]
    flagged = sort_rows(flagged, by, _ORDERS)
    return [
        f"Paired differences, summary. The full table ({len(paired)} rows: every method, "
        "baseline, protocol, ratio, metric and test set) is [paired.csv](paired.csv); its "
        'columns are in docs/data.md ("Outputs").',
        "",
        f"Verdicts after Holm's adjustment over {int((~primary & ~same).sum())} rows "
        f"(family-wise error {FAMILY_ALPHA:.0%}); the {int(primary.sum())} primary rows keep "
        f"their own interval; {int(same.sum())} rows compare a draw with itself: they are "
        "counted apart (same samples), never as a comparison.",
        "",
        *markdown_table(counts.rename(columns={"test_set": "test set"})),
        "",
        "Rows that improve or are worse after adjustment, and the primary rows:",
        "",
        *markdown_table(shown(flagged)),
    ]


def results_readme(table: pd.DataFrame) -> list[str]:
    """The lines of ``<results>/README.md``: the verdict table, the headline, what is here."""
    return [
        "# results/",
        "",
        "## Verdict",
        "",
        *verdict_markdown(table),
        "",
        "## Headline (read from the verdict table)",
        "",
        BEGIN,
        *headline(shown(table)),
        END,
        "",
        "## What is here",
        "",
        STATIC_TEXT,
    ]
