"""The limits of one grading run: one frozen object, serialised once, read everywhere.

Every process of the grader gets its limits from one :class:`Limits` value: the command
line builds it (``python -m autograder.grade --submission-seconds 300 ...``), environment
variables ``DNNK_<FIELD>`` override the defaults (``DNNK_CALL_SECONDS=30``), and it
travels to Dask workers and into the sandbox as JSON (:meth:`Limits.to_json`).

Times are seconds, sizes bytes. The wall-clock budget of a submission does not depend on
the number of cells the student adds or on how slowly their cells load: when it is spent
the submission keeps what it earned before and its sandbox is killed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields

ENV_PREFIX = "DNNK_"


@dataclass(frozen=True)
class Limits:
    """Limits of a grading run (seconds and bytes); see the module docstring.

    Attributes:
        submission_seconds: hard wall-clock budget of one submission (hidden checks and
            notebook execution together).
        cell_seconds: one notebook cell (nbgrader's per-cell timeout).
        call_seconds: one call of a student's function by a hidden check.
        load_seconds: one answer cell while the hidden-check runner loads the code.
        memory_bytes: address space of every sandboxed process.
        file_bytes: largest file a sandboxed process may write.
        tmpfs_bytes: size of each writable tmpfs of a sandbox (``/tmp``, ``/work``).
        processes: processes and threads of one sandbox (its own uid).
        open_files: open file descriptors per sandboxed process.
        output_chars: characters one notebook cell may print (the rest is dropped).
        notebook_bytes: largest submitted notebook the grader reads.
        extra_bytes: other submitted files (data, timestamp) copied into the sandbox.
        executed_bytes: largest executed notebook the grader accepts back.
        threads: torch / BLAS threads inside the sandbox.
    """

    submission_seconds: float = 300.0
    cell_seconds: float = 120.0
    call_seconds: float = 20.0
    load_seconds: float = 60.0
    memory_bytes: int = 4 << 30
    file_bytes: int = 50 << 20
    tmpfs_bytes: int = 256 << 20
    processes: int = 256
    open_files: int = 1024
    output_chars: int = 200_000
    notebook_bytes: int = 50 << 20
    extra_bytes: int = 20 << 20
    executed_bytes: int = 40 << 20
    threads: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{f.name}: expected a positive number, got {value!r}")
            if f.type == "int" and not isinstance(value, int):
                raise ValueError(f"{f.name}: expected an int, got {value!r}")

    def to_json(self) -> str:
        """The limits as a JSON object (field -> value)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Limits:
        """Inverse of :meth:`to_json`; unknown fields are an error."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"limits: unknown fields {sorted(unknown)}")
        return cls(**data)

    @classmethod
    def from_env(cls, environ=None, **overrides) -> Limits:
        """Defaults, then ``DNNK_<FIELD>`` environment variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw:
                try:
                    values[f.name] = int(raw) if f.type == "int" else float(raw)
                except ValueError:
                    raise ValueError(
                        f"{ENV_PREFIX}{f.name.upper()}: expected a number, got {raw!r}"
                    ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes) -> Limits:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
