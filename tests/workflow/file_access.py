"""Which files each Snakemake job opened, from an ``strace -f`` log of the whole run.

A job is the process tree of one adapter script (``.snakemake/scripts/tmp*.py``); it is named by
the log file it writes (every rule has its own). Opens by Snakemake itself (checksums, metadata)
are outside those trees and ignored, so what remains is exactly what the stage code touched.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

STRACE_ARGS = [
    # --seccomp-bpf: only the traced calls stop the process (several times faster than plain -f)
    "strace", "-f", "--seccomp-bpf", "-qq", "-s", "512",
    "-e", "trace=open,openat,creat,execve,clone,clone3,fork,vfork,rename,renameat,renameat2",
]  # fmt: skip

_LINE = re.compile(r"^(\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+)")
_OPEN = re.compile(r'^(?:AT_FDCWD|\d+),\s*"([^"]*)",\s*([A-Z_|]+)|^"([^"]*)",\s*([A-Z_|]+)')
_RENAME = re.compile(r'"([^"]*)",\s*(?:AT_FDCWD,\s*)?"([^"]*)"')
_WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT")


@dataclass
class JobAccess:
    """Files (absolute paths) one job read, wrote and renamed into place."""

    read: set[Path] = field(default_factory=set)
    written: set[Path] = field(default_factory=set)
    renamed_to: set[Path] = field(default_factory=set)


def _joined_lines(text: str):
    """strace lines with ``<unfinished ...>`` / ``<... resumed>`` pairs joined."""
    pending: dict[str, str] = {}
    for line in text.splitlines():
        pid = line.split(" ", 1)[0]
        if line.endswith("<unfinished ...>"):
            pending[pid] = line[: -len("<unfinished ...>")].rstrip()
        elif "resumed>" in line and pid in pending:
            yield pending.pop(pid) + line.split("resumed>", 1)[1]
        else:
            yield line


def _calls(text: str):
    for line in _joined_lines(text):
        match = _LINE.match(line)
        if match:
            yield int(match[1]), match[2], match[3], int(match[4])


def _job_roots(calls: list) -> dict[int, None]:
    return {
        pid: None
        for pid, name, args, ret in calls
        if name == "execve" and ret == 0 and ".snakemake/scripts/tmp" in args
    }


def _root_of(pid: int, parent: dict[int, int], roots: dict[int, None]) -> int | None:
    while pid not in roots:
        if pid not in parent:
            return None
        pid = parent[pid]
    return pid


def job_access(trace: str, workdir: Path, log_dir_marker: str = "/logs/") -> dict[str, JobAccess]:
    """Per job (keyed by its log file, relative to ``workdir``): what it opened under
    ``workdir``."""
    calls = list(_calls(trace))
    parent = {ret: pid for pid, name, _, ret in calls if "clone" in name or "fork" in name}
    roots = _job_roots(calls)
    by_root: dict[int, JobAccess] = defaultdict(JobAccess)
    for pid, name, args, ret in calls:
        root = _root_of(pid, parent, roots)
        if root is None or ret < 0:
            continue
        access = by_root[root]
        if name in ("open", "openat", "creat"):
            match = _OPEN.match(args)
            if match:
                path = match[1] if match[1] is not None else match[3]
                flags = match[2] or match[4] or ""
                write = name == "creat" or any(f in flags for f in _WRITE_FLAGS)
                (access.written if write else access.read).add(_absolute(path, workdir))
        elif name.startswith("rename"):
            match = _RENAME.search(args)
            if match:
                access.renamed_to.add(_absolute(match[2], workdir))
    jobs = {}
    for access in by_root.values():
        logs = [p for p in access.written if log_dir_marker in str(p) and p.suffix == ".log"]
        if len(logs) == 1:
            jobs[str(logs[0].relative_to(workdir))] = access
    return jobs


def _absolute(path: str, workdir: Path) -> Path:
    p = Path(path)
    return Path(*(p if p.is_absolute() else workdir / p).parts).resolve(strict=False)


def declared_jobs(summary_tsv: str, workdir: Path) -> dict[str, tuple[set[Path], set[Path]]]:
    """Per job (log file): (declared inputs, declared outputs) from ``--detailed-summary``."""
    jobs: dict[str, tuple[set[Path], set[Path]]] = {}
    lines = summary_tsv.splitlines()
    header_at = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    header = lines[header_at].split("\t")
    for line in lines[header_at + 1 :]:
        row = dict(zip(header, line.split("\t"), strict=False))
        log = row.get("log-file(s)", "-")
        if not log or log == "-":
            continue
        inputs, outputs = jobs.setdefault(log, (set(), set()))
        outputs.add(_absolute(row["output_file"], workdir))
        if row.get("input-file(s)", "-") not in ("-", ""):
            inputs.update(_absolute(p, workdir) for p in row["input-file(s)"].split(","))
    return jobs


def under(path: Path, roots: set[Path]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one of them."""
    return any(path == r or r in path.parents for r in roots)
