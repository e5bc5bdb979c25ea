"""Names of derived datasets, study variants and guidance scales as they appear in paths and
Snakemake wildcards (:mod:`tardiff.layout` builds the paths from them)."""

from __future__ import annotations

#: separator between a dataset's name and a scarcity fraction (``mimic3_demo-train0.25``)
SCARCITY_TAG = "-train"


def scale_tag(scale: float | str) -> str:
    """How a guidance scale appears in paths and wildcards (``0.1``, ``0.03``, ``-1``)."""
    return scale if isinstance(scale, str) else format(float(scale), "g")


def scarcity_dataset(dataset: str, fraction: float) -> str:
    """Name (and results folder) of ``dataset`` with ``fraction`` of its train split kept."""
    return f"{dataset}{SCARCITY_TAG}{format(float(fraction), 'g')}"


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
    """(base dataset, train fraction) of a dataset name; fraction 1.0 for a base dataset."""
    base, tag, fraction = name.partition(SCARCITY_TAG)
    return (base, float(fraction)) if tag else (name, 1.0)
