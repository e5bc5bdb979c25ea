"""Names of derived datasets, study variants and guidance scales as they appear in paths and
Snakemake wildcards (:mod:`tardiff.layout` builds the paths from them)."""

from __future__ import annotations

#: separator between a dataset's name and a scarcity fraction (``mimic3_demo-train0.25``)
SCARCITY_TAG = "-train"
#: separator between a dataset's name and a cross-validation fold (``yaib-cv1.2``: repeat 1, fold 2)
FOLD_TAG = "-cv"


def scale_tag(scale: float | str) -> str:
    """How a guidance scale appears in paths and wildcards (``0.1``, ``0.03``, ``-1``)."""
    return scale if isinstance(scale, str) else format(float(scale), "g")


def scarcity_dataset(dataset: str, fraction: float) -> str:
    """Name (and results folder) of ``dataset`` with ``fraction`` of its train split kept."""
    return f"{dataset}{SCARCITY_TAG}{format(float(fraction), 'g')}"


def fold_dataset(dataset: str, repeat: int, fold: int) -> str:
    """Name (and results folder) of ``dataset`` split for fold ``fold`` of repeat ``repeat``."""
    return f"{dataset}{FOLD_TAG}{repeat}.{fold}"


def parse_fold(name: str) -> tuple[str, str | None]:
    """(base dataset, fold id ``r<repeat>f<fold>``) of a dataset name (None: not a fold copy);
    the id is not a number, so tables read it back as text."""
    base, tag, fold = name.partition(FOLD_TAG)
    if not tag:
        return name, None
    repeat, _, number = fold.partition(".")
    return base, f"r{repeat}f{number}"


def study_variant(source: str, fraction: float) -> str:
    """Name of a guidance-study variant of G: ``source-minority`` or ``guide0.25``."""
    return f"guide{format(float(fraction), 'g')}" if fraction < 1 else f"source-{source}"


def parse_variant(variant: str) -> tuple[str | None, float]:
    """(source, fraction) of a variant name; source None means the main G's source."""
    if variant.startswith("guide"):
        return None, float(variant.removeprefix("guide"))
    if variant.startswith("source-"):
        return variant.removeprefix("source-"), 1.0
    raise ValueError(f"unknown guidance-study variant '{variant}'")


def parse_dataset(name: str) -> tuple[str, float]:
    """(base dataset, train fraction) of a dataset name; fraction 1.0 for a base dataset and for
    a cross-validation fold copy."""
    unfolded = parse_fold(name)[0]
    base, tag, fraction = unfolded.partition(SCARCITY_TAG)
    return (base, float(fraction)) if tag else (unfolded, 1.0)
