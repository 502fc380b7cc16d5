"""The grading limits (autograder/limits.py): one frozen object, serialised once."""

from __future__ import annotations

import dataclasses

import pytest

from autograder.limits import Limits


def test_round_trip_and_frozen():
    limits = Limits(submission_seconds=99, memory_bytes=1 << 30)
    assert Limits.from_json(limits.to_json()) == limits
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.memory_bytes = 1


def test_environment_overrides_with_one_prefix():
    env = {
        "DNNK_CALL_SECONDS": "7.5",
        "DNNK_MEMORY_BYTES": "1073741824",
        "DNNKERNELS_CALL_SECONDS": "1",
    }
    limits = Limits.from_env(env, cell_seconds=33)
    assert limits.call_seconds == 7.5 and limits.memory_bytes == 1 << 30
    assert limits.cell_seconds == 33


@pytest.mark.parametrize(
    ("field", "value"), [("memory_bytes", 0), ("call_seconds", -1), ("threads", 1.5)]
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        Limits(**{field: value})


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ValueError, match="DNNK_CALL_SECONDS"):
        Limits.from_env({"DNNK_CALL_SECONDS": "soon"})


def test_unknown_json_field_is_an_error():
    with pytest.raises(ValueError, match="unknown"):
        Limits.from_json('{"memory_bytez": 1}')


def test_every_environment_variable_of_the_kit_has_the_one_prefix():
    """The kit's own variables are DNNK_<NAME>; the old DNNKERNELS_ prefix is gone."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = [p for d in ("src", "autograder", "release") for p in (root / d).rglob("*.py")]
    files += [root / "release" / "README.md", root / "nbgrader_config.py"]
    stale = [str(p.relative_to(root)) for p in files if "DNNKERNELS" + "_" in p.read_text()]
    assert not stale, f"files still use the DNNKERNELS_ prefix: {stale}"
