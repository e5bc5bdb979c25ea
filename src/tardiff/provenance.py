"""Code fingerprints, so Snakemake reruns a step when the package code it calls changes.

Snakemake only notices edits to a rule's own script, shell text or params; a hash of the package
modules a step uses is passed as a ``params:`` value, which Snakemake tracks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def source_hash(*modules: str) -> str:
    """SHA-256 (first 16 hex digits) of the named package modules or subpackages.

    ``modules`` are paths relative to the package root without suffix, e.g. ``"demo"`` (a
    subpackage: all its ``.py`` files) or ``"variables"`` (``variables.py``).
    """
    digest = hashlib.sha256()
    for name in sorted(set(modules)):
        target = PACKAGE_ROOT / name
        files = sorted(target.rglob("*.py")) if target.is_dir() else [target.with_suffix(".py")]
        if not files or not all(f.exists() for f in files):
            raise FileNotFoundError(f"no package module named {name!r} under {PACKAGE_ROOT}")
        for path in files:
            digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(paths: list[str], out_path: str) -> None:
    """Write a JSON manifest (path → size and SHA-256) of a dataset's outputs."""
    from tardiff.io import write_json

    entries = {str(p): {"bytes": Path(p).stat().st_size, "sha256": file_sha256(p)} for p in paths}
    write_json({"files": entries}, out_path)
