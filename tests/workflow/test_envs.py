"""The conda env files agree with pyproject.toml, and jobs of envs/data.yaml import nothing else.

No conda channel is reachable here, so the env files are checked statically: every runtime
dependency of ``[project] dependencies`` is in envs/torch.yaml with the same bounds (under its
conda-forge name), envs/data.yaml holds a subset with the same bounds, envs/workflow.yaml pins
Snakemake and DVC like the ``workflow`` extra. The adapters of rules whose env is envs/data.yaml
must import (at import time, through the package) only what that env holds: checked from their
import statements and by importing them with the torch env's extra packages blocked.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from wfutil import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SRC = ROOT / "src"
SCRIPTS = ROOT / "workflow" / "scripts"
#: pip name -> conda-forge name, where they differ
CONDA_NAMES = {
    "torch": "pytorch",
    "duckdb": "python-duckdb",
    "matplotlib": "matplotlib-base",
    "snakemake": "snakemake-minimal",
}
#: conda-forge name -> import name, where they differ
IMPORT_NAMES = {
    "pytorch": "torch",
    "python-duckdb": "duckdb",
    "matplotlib-base": "matplotlib",
    "pyyaml": "yaml",
    "scikit-learn": "sklearn",
}


def conda_env(name: str) -> dict[str, str]:
    """Package -> version spec of ``envs/<name>.yaml`` (``python`` keeps its ``=3.11`` pin)."""
    env = yaml.safe_load((ROOT / "envs" / f"{name}.yaml").read_text())
    specs = {}
    for entry in env["dependencies"]:
        package, spec = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", entry).groups()
        specs[package.lower()] = spec.replace(" ", "")
    return specs


def pip_specs(requirements: list[str]) -> dict[str, SpecifierSet]:
    """conda-forge name -> specifier of each requirement."""
    parsed = (Requirement(r) for r in requirements)
    return {CONDA_NAMES.get(r.name.lower(), r.name.lower()): r.specifier for r in parsed}


RUNTIME = pip_specs(PYPROJECT["project"]["dependencies"])


def _mismatches(env: dict[str, str], expected: dict[str, SpecifierSet]) -> dict:
    return {
        name: (env[name], str(spec))
        for name, spec in expected.items()
        if name in env and SpecifierSet(env[name]) != spec
    }


def test_torch_env_holds_every_runtime_dependency_with_its_bounds():
    env = conda_env("torch")
    assert not sorted(set(RUNTIME) - set(env)), "missing from envs/torch.yaml"
    assert not _mismatches(env, RUNTIME)
    assert set(env) - set(RUNTIME) == {"python"}, "envs/torch.yaml has packages pyproject lacks"


def test_data_env_is_a_subset_with_the_same_bounds():
    env = conda_env("data")
    assert set(env) - {"python"} <= set(RUNTIME)
    assert not _mismatches(env, RUNTIME)
    assert "pytorch" not in env


def test_workflow_env_pins_snakemake_and_dvc_like_the_extra():
    env = conda_env("workflow")
    extra = pip_specs(PYPROJECT["project"]["optional-dependencies"]["workflow"])
    assert set(extra) <= set(env)
    assert not _mismatches(env, extra)


@pytest.mark.parametrize("name", ["data", "torch", "workflow"])
def test_env_python_satisfies_requires_python(name):
    pin = conda_env(name)["python"]
    assert pin.startswith("=") and not pin.startswith("==")
    assert Version(pin.lstrip("=")) in SpecifierSet(PYPROJECT["project"]["requires-python"])


def rule_envs() -> dict[str, tuple[str, Path]]:
    """rule -> (env file name, adapter script) of every rule with a ``conda:`` and ``script:``."""
    rules = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^(?:rule|checkpoint) (\w+):", smk.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            conda = re.search(r"conda:\s*\n\s*\"([^\"]+)\"", body)
            script = re.search(r"script:\s*\n\s*\"([^\"]+)\"", body)
            if conda and script:
                env = Path(conda.group(1)).stem
                rules[name] = (env, (smk.parent / script.group(1)).resolve())
    return rules


DATA_SCRIPTS = sorted({s for env, s in rule_envs().values() if env == "data"})


def _import_time_nodes(body: list[ast.stmt]):
    """Import statements run when a module is imported (not those inside functions or under
    ``if TYPE_CHECKING:``)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.Try | ast.With | ast.ClassDef):
            for field in ("body", "orelse", "finalbody"):
                yield from _import_time_nodes(getattr(node, field, []))
            for handler in getattr(node, "handlers", []):
                yield from _import_time_nodes(handler.body)


def _module_file(name: str) -> Path | None:
    """Source file of a ``tardiff`` module or package (or the ``_srcpath`` adapter helper)."""
    base = (SCRIPTS if name == "_srcpath" else SRC).joinpath(*name.split("."))
    for file in (base / "__init__.py", base.with_name(f"{base.name}.py")):
        if file.exists():
            return file
    return None


def _imported_names(path: Path, package: str) -> set[str]:
    """Fully qualified modules imported at import time by the module at ``path``."""
    names = set()
    for node in _import_time_nodes(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
            continue
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
        module = ".".join(p for p in (base, node.module) if p)
        names.add(module)
        names |= {f"{module}.{a.name}" for a in node.names if _module_file(f"{module}.{a.name}")}
    return names


def third_party_imports(script: Path) -> set[str]:
    """Top-level names of the non-stdlib packages ``script`` imports at import time, following
    the ``tardiff`` package (and its parent packages) transitively."""
    seen, found, queue = set(), set(), [(script, "")]
    while queue:
        path, package = queue.pop()
        for name in _imported_names(path, package):
            top = name.split(".")[0]
            if top not in ("tardiff", "_srcpath"):
                if top not in sys.stdlib_module_names:
                    found.add(top)
                continue
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                module = ".".join(parts[:i])
                file = _module_file(module)
                if file and module not in seen:
                    seen.add(module)
                    is_package = file.name == "__init__.py"
                    queue.append((file, module if is_package else ".".join(parts[: i - 1])))
    return found


def test_data_rules_are_found():
    rules = {r for r, (env, _) in rule_envs().items() if env == "data"}
    assert {"demo_raw", "extract_cohort", "scarcity_cohort", "manifest"} <= rules


def test_data_env_import_names_cover_the_torch_env_difference():
    """Sanity check of the name maps the import checks below rely on."""
    blocked = {IMPORT_NAMES.get(p, p) for p in set(conda_env("torch")) - set(conda_env("data"))}
    assert blocked == {"torch", "sklearn", "scipy", "matplotlib", "lightgbm"}


@pytest.mark.parametrize("script", DATA_SCRIPTS, ids=lambda p: p.stem)
def test_data_rule_imports_only_data_env_packages(script):
    allowed = {IMPORT_NAMES.get(p, p) for p in conda_env("data")} - {"python"}
    assert third_party_imports(script) <= allowed


BLOCKER = """
import ast, importlib.abc, sys
blocked = set(sys.argv[1].split(","))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not in envs/data.yaml", name=name)
sys.meta_path.insert(0, Blocker())
sys.path[:0] = [sys.argv[2], sys.argv[3]]
for script in sys.argv[4:]:
    tree = ast.parse(open(script).read())
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    exec(compile(ast.Module(imports, []), script, "exec"), {"__name__": "adapter"})
"""


def test_data_rule_adapters_import_without_the_torch_env_packages():
    blocked = {IMPORT_NAMES.get(p, p) for p in set(conda_env("torch")) - set(conda_env("data"))}
    args = [",".join(sorted(blocked)), str(SCRIPTS), str(SRC), *map(str, DATA_SCRIPTS)]
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
