"""The headline: sentences read from the verdict table, and the check that a README's agree.

A README (the repository's, or ``<results>/README.md``) carries its headline between the markers
``BEGIN`` and ``END``; each line there is an HTML comment, a line of the verdict table, or one
of three sentences (:func:`headline` writes them from the table, per task and, after the
primary, per evaluator; ``, <evaluator>`` is absent from tables without an evaluator column):

- ``- **<dataset> · <task>**, primary (<test set> test set): <method> − <baseline>, <setting>:
  <verdict>, Δ = <Δ [interval]>.``
- ``- **<dataset> · <task>** vs <baseline> (<setting>, <test set> test set, <evaluator>,
  Holm-adjusted): improves: <methods>; worse: <methods>; no detectable difference: <methods>;
  same samples: <methods>.`` for ``real`` and ``conditional`` (``none`` for an empty list; the
  primary row is left out: it has its sentence)
- ``- **<dataset> · <task>** vs the imbalance corrections (<setting>, <test set> test set,
  <evaluator>, Holm-adjusted): improves on both class_weight and oversample: <methods>; on one:
  <methods>; on neither: <methods>.``: the generative methods (not ``jitter`` or the
  corrections) by how many of the two corrections they improve on.

:func:`headline_problems` parses the block and compares each sentence, field by field, with the
one the verdict table (``tables/verdict.md``, parsed from its Markdown) gives for the same task
and comparison; a sentence that disagrees, cannot be parsed or is missing for a primary row is
a problem.
"""

from __future__ import annotations

import re

import pandas as pd

from tardiff.evaluate.downstream.metrics import NO_DIFFERENCE, SAME_SAMPLES
from tardiff.methods import CORRECTIONS, METHODS

BEGIN, END = "<!-- headline:begin -->", "<!-- headline:end -->"
_PRIMARY = (
    "- **{task}**, primary ({test_set} test set): {comparison}, {setting}: {verdict}, Δ = {delta}."
)
_BASELINE = (
    "- **{task}** vs {baseline} ({setting}, {test_set} test set{evaluator}, Holm-adjusted): "
    "improves: {improves}; worse: {worse}; no detectable difference: {none}; same samples: "
    "{same}."
)
_CORRECTIONS = (
    "- **{task}** vs the imbalance corrections ({setting}, {test_set} test set{evaluator}, "
    "Holm-adjusted): improves on both class_weight and oversample: {both}; on one: {one}; on "
    "neither: {neither}."
)
#: the baselines with a sentence of their own (the corrections share one)
SENTENCE_BASELINES = ("real", "conditional")
#: the method lists of a baseline sentence and the verdict each one holds
_LISTS = {"improves": "improves", "worse": "worse", "none": NO_DIFFERENCE, "same": SAME_SAMPLES}
_VERDICT = "|".join(_LISTS.values())
_PRIMARY_RE = re.compile(
    r"- \*\*(?P<task>.+?)\*\*, primary \((?P<test_set>\w+) test set\): "
    r"(?P<comparison>\S+ − \S+), (?P<setting>.+): (?P<verdict>"
    + _VERDICT
    + r"), Δ = (?P<delta>.+)\."
)
_EVALUATOR = r"(?:, (?P<evaluator>\w+))?"
_BASELINE_RE = re.compile(
    r"- \*\*(?P<task>.+?)\*\* vs (?P<baseline>\w+) \((?P<setting>.+), (?P<test_set>\w+) test set"
    + _EVALUATOR
    + r", Holm-adjusted\): improves: (?P<improves>.+?); worse: (?P<worse>.+?); no detectable "
    r"difference: (?P<none>.+?); same samples: (?P<same>.+?)\."
)
_CORRECTIONS_RE = re.compile(
    r"- \*\*(?P<task>.+?)\*\* vs the imbalance corrections \((?P<setting>.+), (?P<test_set>\w+) "
    r"test set" + _EVALUATOR + r", Holm-adjusted\): improves on both class_weight and "
    r"oversample: (?P<both>.+?); on one: (?P<one>.+?); on neither: (?P<neither>.+?)\."
)
#: the method lists of a corrections sentence
_COUNTS = {"both": 2, "one": 1, "neither": 0}


def _methods(group: pd.DataFrame, verdict: str) -> str:
    methods = group["comparison"].str.split(" − ").str[0][group["verdict"] == verdict]
    return ", ".join(methods) or "none"


def _corrections(group: pd.DataFrame) -> dict[str, str]:
    """The generative methods that improve on both corrections, on one, on neither."""
    method, baseline = (group["comparison"].str.split(" − ").str[i] for i in (0, 1))
    vs_correction = baseline.isin(CORRECTIONS)
    wins = (group["verdict"] == "improves")[vs_correction].groupby(method[vs_correction]).sum()
    generative = [m for m in wins.index if m in METHODS]
    return {key: ", ".join(m for m in generative if wins[m] == n) or "none"
            for key, n in _COUNTS.items()}  # fmt: skip


def _task_sentences(task: str, rows: pd.DataFrame) -> list[str]:
    """One task's sentences: the primary row, then per evaluator each sentence baseline and the
    imbalance corrections."""
    primary = rows["primary"] == "yes"
    lines = [
        _PRIMARY.format(task=task, test_set=r["test set"], comparison=r["comparison"],
                        setting=r["setting"], verdict=r["verdict"], delta=r["Δ [interval]"])
        for _, r in rows[primary].iterrows()
    ]  # fmt: skip
    others = rows[~primary]
    evaluators = others["evaluator"] if "evaluator" in others else pd.Series("", others.index)
    for evaluator, by_evaluator in others.groupby(evaluators, sort=False):
        first = by_evaluator.iloc[0]
        where = {"task": task, "setting": first["setting"], "test_set": first["test set"],
                 "evaluator": f", {evaluator}" if evaluator else ""}  # fmt: skip
        baselines = by_evaluator["comparison"].str.split(" − ").str[1]
        for baseline, group in by_evaluator.groupby(baselines, sort=False):
            if baseline in SENTENCE_BASELINES:
                lists = {key: _methods(group, verdict) for key, verdict in _LISTS.items()}
                lines.append(_BASELINE.format(baseline=baseline, **where, **lists))
        if baselines.isin(CORRECTIONS).any():
            lines.append(_CORRECTIONS.format(**where, **_corrections(by_evaluator)))
    return lines


def headline(cells: pd.DataFrame) -> list[str]:
    """The sentences of the verdict table's cells (as Markdown shows them), task by task."""
    return [line for task, rows in cells.groupby("task", sort=False)
            for line in _task_sentences(task, rows)]  # fmt: skip


def read_markdown_table(text: str) -> pd.DataFrame:
    """The cells (strings) of the first pipe table in ``text``."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if len(lines) < 2:
        raise ValueError("no Markdown table in the text")
    header, *rows = (line[2:-2].split(" | ") for line in lines[:1] + lines[2:])
    return pd.DataFrame(rows, columns=header)


def _parsed(sentence: str) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """(key, fields) of a sentence: the key names the task and what it compares."""
    if match := _PRIMARY_RE.fullmatch(sentence):
        return ("primary", match["task"], match["comparison"]), match.groupdict()
    for kind, pattern, lists in (("baseline", _BASELINE_RE, _LISTS),
                                 ("corrections", _CORRECTIONS_RE, _COUNTS)):  # fmt: skip
        if match := pattern.fullmatch(sentence):
            fields = match.groupdict()
            for key in lists:  # a list of methods reads the same in any order
                fields[key] = ", ".join(sorted(fields[key].split(", ")))
            return (kind, match["task"], fields.get("baseline"), fields["evaluator"]), fields
    return None


def _block(readme: str) -> list[str] | None:
    """The non-empty lines between the markers, comments removed (None without markers)."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1:
        return None
    inner = re.sub(r"<!--.*?-->", "", readme.split(BEGIN, 1)[1].split(END, 1)[0], flags=re.S)
    return [line.strip() for line in inner.splitlines() if line.strip()]


def headline_problems(readme: str, verdict_md: str | None) -> list[str]:
    """What in ``readme``'s headline block disagrees with the verdict table ``verdict_md``
    (its Markdown; None where no run has written one yet: the block must then be empty)."""
    lines = _block(readme)
    if lines is None:
        return [f"no headline block: mark it with {BEGIN} and {END}"]
    if verdict_md is None:
        return ["a headline but no verdict table to check it against"] if lines else []
    expected = dict(filter(None, map(_parsed, headline(read_markdown_table(verdict_md)))))
    table_lines = {line.strip() for line in verdict_md.splitlines() if line.startswith("|")}
    problems, seen = [], set()
    for line in lines:
        parsed = None if line.startswith("|") else _parsed(line)
        if line.startswith("|"):
            problems += [] if line in table_lines else [f"not a line of the verdict table: {line}"]
        elif parsed is None or parsed[0] not in expected:
            problems.append(f"not a sentence the verdict table can check: {line}")
        else:
            key, fields = parsed
            seen.add(key)
            wrong = [f"{k} {v!r} (table: {expected[key][k]!r})"
                     for k, v in fields.items() if v != expected[key][k]]  # fmt: skip
            problems += [f"{line}: disagrees on {'; '.join(wrong)}"] if wrong else []
    missing = [key for key in expected if key[0] == "primary" and key not in seen]
    return problems + [f"no sentence for the primary row of {key[1]}" for key in missing]
