"""The cluster profiles give a GPU to exactly the rules that declare ``resources: gpu=1``.

The SLURM and Kubernetes executor plugins are not installed here (and conda is not reachable), so
each profile is checked statically against the rules' declarations, then dry-run locally: the
profile without its ``executor`` and ``use-conda`` keys, so that Snakemake applies its threads and
resources to the jobs of the DAG of config/test.yaml, whose resources the dry run prints.
"""

from __future__ import annotations

import re

import pytest
import yaml
from wfutil import ROOT, snakemake

PROFILES = ("slurm", "kubernetes")
#: what marks a GPU job in each profile (besides the rule's own ``gpu=1``)
GPU_MARK = {"slurm": ("slurm_partition", "gpu"), "kubernetes": ("gpu_manufacturer", "nvidia")}
#: settings the profiles keep for the cluster only (plugins and conda are not installed here)
CLUSTER_ONLY = ("executor", "use-conda")


def profile(name: str) -> dict:
    return yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())


def rule_resources() -> dict[str, str]:
    """rule -> text of its ``resources:`` block ('' without one), from the rule files; a
    ``use rule A as B with:`` rule has A's (none of them sets resources of its own)."""
    rules, derived = {}, []
    for smk in [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]:
        text = smk.read_text()
        blocks = re.split(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            found = re.search(r"^    resources:\n((?:        .*\n)+)", body, flags=re.M)
            rules[name] = found.group(1) if found else ""
        derived += re.findall(r"^ *use rule (\w+) as (\w+) with:", text, flags=re.M)
    for base, name in derived:
        rules[name] = rules[base]
    return rules


RULES = rule_resources()
GPU_RULES = {name for name, text in RULES.items() if re.search(r"\bgpu=1\b", text)}


def test_rules_declare_gpu_only_as_one():
    assert GPU_RULES, "no rule declares gpu=1"
    for name, text in RULES.items():
        assert not re.search(r"\bgpu=(?!1\b)", text), f"{name}: gpu other than 1 (never gpu=0)"


@pytest.mark.parametrize("name", PROFILES)
def test_profile_names_only_existing_rules(name):
    config = profile(name)
    assert set(config.get("set-threads", {})) <= set(RULES)
    assert set(config.get("set-resources", {})) <= set(RULES)


@pytest.mark.parametrize("name", PROFILES)
def test_profile_gives_a_gpu_to_exactly_the_gpu_rules(name):
    config = profile(name)
    key, value = GPU_MARK[name]
    default = config.get("default-resources", {})
    assert "gpu" not in default and default.get(key) != value
    for rule in RULES:
        resources = {**default, **config.get("set-resources", {}).get(rule, {})}
        if rule in GPU_RULES:
            assert resources.get(key) == value, f"{name}: {rule} declares gpu=1, gets no GPU"
            assert resources.get("gpu", 1) == 1, rule
        else:
            assert "gpu" not in resources and resources.get(key) != value, f"{name}: {rule}"


def test_slurm_threads_fit_the_cpus_requested():
    config = profile("slurm")
    default = config["default-resources"]["cpus_per_task"]
    for rule, threads in config["set-threads"].items():
        cpus = config.get("set-resources", {}).get(rule, {}).get("cpus_per_task", default)
        assert threads <= cpus, f"{rule}: {threads} threads on {cpus} CPUs"


def dry_run_jobs(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """(rule, resources) of every job a dry run lists."""
    jobs = []
    blocks = re.split(r"^(?:local)?(?:rule|checkpoint) (\w+):$", stdout, flags=re.M)
    for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
        line = re.search(r"^\s+resources: (.*)$", body, flags=re.M)
        pairs = (item.split("=", 1) for item in line.group(1).split(", ")) if line else ()
        jobs.append((name, dict(pairs)))
    return jobs


@pytest.mark.parametrize("name", PROFILES)
def test_dry_run_with_profile(name, tmp_path):
    local = {k: v for k, v in profile(name).items() if k not in CLUSTER_ONLY}
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(local))
    result = snakemake(
        "-n", "--cores", "2", "--profile", str(folder), "--directory", str(tmp_path / "run"),
        "--configfile", str(ROOT / "config/test.yaml"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:]
    jobs = dry_run_jobs(result.stdout)
    assert {rule for rule, _ in jobs} & GPU_RULES, "the dry run lists no GPU job"
    key, value = GPU_MARK[name]
    for rule, resources in jobs:
        gpu = rule in GPU_RULES
        assert (resources.get("gpu") == "1") == gpu, (rule, resources)
        assert (resources.get(key) == value) == gpu, (rule, resources)
