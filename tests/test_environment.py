"""The conda environment and the pip project declare the same pinned packages."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> list[str]:
    """The project's dependencies and those of every extra (``grader``)."""
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
