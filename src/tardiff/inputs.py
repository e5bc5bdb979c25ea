"""Checks of a validated config against the variable catalogue and the raw data, before any job.

:func:`tardiff.config.validate_config` checks the config alone (schema, defaults, consistency);
the functions here check what extraction will read, so that ``tardiff validate-config`` and the
Snakefile (``snakemake -n`` included) fail at once instead of after hours of upstream jobs:

- :func:`check_features` (no file access): every feature of a MIMIC-III or eICU dataset (and of
  its external population) is one the source can extract, and MIMIC-III ``item_ids`` overrides
  are consistent. A YAIB feature is a column of its ``dyn.parquet``, checked by :func:`check_files`
  (of the simulated YAIB cohort, one of its columns, :data:`tardiff.demo.yaib.CONCEPTS`).
- :func:`check_files`: every ``raw_dir`` / YAIB ``path`` (the external ones included) is a folder
  holding every table its source reads (all missing ones named at once); a YAIB cohort's files
  have the columns extraction needs and ``dyn.parquet`` a column for every feature. Embedded demo
  datasets have no files to check.

:func:`check_inputs` runs both and raises one :class:`~tardiff.config.ConfigError` naming every
problem by its config key. A test that only validates a config written for another machine (an
example pointing at credentialed data) calls :func:`check_features` and leaves out
:func:`check_files`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tardiff.config import ConfigError
from tardiff.demo.yaib import CONCEPTS
from tardiff.extract import eicu, mimic3, yaib
from tardiff.extract.tables import ExtractError, MissingTableError, find_table
from tardiff.settings import DatasetSettings
from tardiff.variables import ALIASES, VARIABLES

_CSV = (".csv.gz", ".csv")


def check_inputs(config: dict[str, Any]) -> None:
    """Raise one ConfigError listing every problem of :func:`check_features` and
    :func:`check_files` (``config``: validated by :func:`tardiff.config.validate_config`)."""
    problems = check_features(config) + check_files(config)
    if problems:
        raise ConfigError("invalid config inputs:\n  " + "\n  ".join(problems))


def _entries(config: dict[str, Any]) -> Iterator[tuple[str, str, DatasetSettings]]:
    """(dataset key, key of the entry, what extraction reads) of every dataset and external
    population."""
    for name, section in config["datasets"].items():
        entry = DatasetSettings.from_config(section)
        yield f"datasets.{name}", f"datasets.{name}", entry
        if entry.external is not None:
            yield f"datasets.{name}", f"datasets.{name}.external", entry.external_entry()


def _extractable(entry: DatasetSettings) -> list[str]:
    """The catalogue's names a MIMIC-III or eICU source can extract (item ids overridden or
    not); the columns of the simulated YAIB cohort."""
    if entry.source == "yaib":
        return list(CONCEPTS.values())
    if entry.source == "mimic3":
        return sorted({*(n for n, v in VARIABLES.items() if v.mimic_items), *entry.item_ids})
    return sorted(n for n, v in VARIABLES.items() if v.eicu)


#: a ricu concept and the project's name of one quantity, both ways
_SAME = {**ALIASES, **{project: ricu for ricu, project in ALIASES.items()}}


def _hint(names: list[str], known: list[str]) -> str:
    """``; did you mean ...`` for the names with an alias or a close match in ``known``."""
    pairs = []
    for name in names:
        match = [_SAME[name]] if _SAME.get(name) in known else []
        match = match or difflib.get_close_matches(name, known, n=1)
        pairs += [f"{match[0]!r} for {name!r}"] if match else []
    return f"; did you mean {', '.join(pairs)}?" if pairs else ""


def check_features(config: dict[str, Any]) -> list[str]:
    """Problems with the features of MIMIC-III and eICU datasets (module docstring)."""
    problems = []
    for dataset_key, key, entry in _entries(config):
        if entry.source == "yaib" and not entry.uses_demo:
            continue  # a cohort's own columns, checked with its files
        where = f" (external population, source {entry.source})" if key != dataset_key else ""
        known = _extractable(entry)
        unknown = [f for f in entry.features if f not in known]
        if unknown:
            problems.append(
                f"config key '{dataset_key}.features'{where}: {', '.join(map(repr, unknown))} "
                f"not extractable from {entry.source} (known: {', '.join(known)})"
                + _hint(unknown, known)
            )
        elif entry.source == "mimic3":
            try:
                mimic3.feature_items(entry)
            except ExtractError as err:
                problems.append(f"config key '{dataset_key}.item_ids'{where}: {err}")
    return problems


def check_files(config: dict[str, Any]) -> list[str]:
    """Missing raw folders, tables and YAIB columns (module docstring)."""
    problems = []
    for dataset_key, key, entry in _entries(config):
        if entry.uses_demo:
            continue
        if entry.source == "yaib":
            problems += _yaib_problems(dataset_key, f"config key '{key}.path'", entry)
        else:
            problems += _csv_problems(f"config key '{key}.raw_dir'", entry)
    return problems


def _has(folder: Path, name: str, suffixes: tuple[str, ...]) -> bool:
    try:
        find_table(folder, name, suffixes)
    except MissingTableError:
        return False
    return True


def _folder_problem(key: str, folder: Path, source: str, names: list[str], suffixes) -> str:
    """What ``folder`` lacks of the tables ``names`` ('' if nothing)."""
    if not folder.is_dir():
        return f"{key}: folder {folder} does not exist"
    missing = [name + suffixes[0] for name in names if not _has(folder, name, suffixes)]
    if not missing:
        return ""
    return (
        f"{key}: {folder} lacks {len(missing)} of the {len(names)} tables the {source} source "
        f"reads: {', '.join(missing)}" + " (or .csv)" * (suffixes == _CSV)
    )


def _csv_problems(key: str, entry: DatasetSettings) -> list[str]:
    """A MIMIC-III or eICU raw folder that lacks a table extraction reads."""
    if entry.source == "mimic3":
        names = list(mimic3.TABLES)
    else:
        names = eicu.tables([f for f in entry.features if f in _extractable(entry)])
    problem = _folder_problem(key, Path(entry.raw_dir), entry.source, names, _CSV)
    return [problem] if problem else []


def _yaib_problems(dataset_key: str, key: str, entry: DatasetSettings) -> list[str]:
    """A YAIB folder that lacks a file, a column extraction needs or a feature's column."""
    folder = Path(entry.path)
    problem = _folder_problem(key, folder, "yaib", list(yaib.TABLES), (".parquet",))
    if problem:
        return [problem]
    problems, opened = [], {}
    for name in yaib.TABLES:
        try:
            opened[name] = yaib.open_parquet(str(folder), name)
        except ExtractError as err:
            problems.append(f"{key}: {err}")
    if "dyn" in opened:
        path, columns = opened["dyn"]
        unknown = [f for f in entry.features if f.lower() not in columns]
        names = [field.name for field in columns.values()]
        if unknown:
            problems.append(
                f"config key '{dataset_key}.features': {', '.join(map(repr, unknown))} not "
                f"columns of {path}" + _hint(unknown, names)
            )
    return problems
