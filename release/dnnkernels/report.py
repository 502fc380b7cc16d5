# Generated automatically from src/dnnkernels/report.py by `make release` (student build: exercise bodies run your own code); do not edit.
"""One report layer for the benchmarks and studies: machine line, tables, plots, sections.

- :func:`machine_description` -- the line that says where a measurement was taken (CPU
  model, cores, threads, torch, Python, date), :func:`load_average`;
- :func:`write_csv` and :func:`markdown_table` -- dict rows as a CSV file or a GitHub
  markdown table;
- :func:`pyplot` and :func:`save_figure` -- matplotlib without a display (a notebook keeps
  its inline backend);
- :func:`write_section` -- one named section of ``BENCHMARKS.md`` between its
  ``<!-- bench:NAME:begin -->`` / ``<!-- bench:NAME:end -->`` markers, every other byte of
  the file kept (the markers are validated: one of each, in order, or none).
"""

from __future__ import annotations

import csv
import datetime as _dt
import math
import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from dnnkernels.checks import describe

#: first lines of a BENCHMARKS.md created by :func:`write_section`
HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by a command between its `<!-- bench:NAME:begin/end -->` "
    "markers (conv2d, fft, matmul: `python -m dnnkernels.bench`); timings are medians of "
    "`torch.utils.benchmark` runs, so they vary from machine to machine and run to run.\n"
)


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (else what ``platform`` knows)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else (platform.processor() or platform.machine())


def machine_description(threads: int = 1) -> str:
    """One line: CPU model (``/proc/cpuinfo``), logical cores, threads used, torch, date."""
    date = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; torch {torch.__version__} "
        f"with {threads} thread{'s' if threads != 1 else ''}; Python "
        f"{platform.python_version()} on {platform.system()}; measured {date}"
    )


def load_average() -> str:
    """``"1.0, 0.8, 0.5 (1, 5, 15 min)"``, or ``"unknown"`` where the OS has none."""
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg()) + " (1, 5, 15 min)"
    except (OSError, AttributeError):  # pragma: no cover - not on every platform
        return "unknown"


def format_value(value: object, float_format: str = ".6g") -> str:
    """A table cell: floats with ``float_format`` (``nan`` as "nan"), the rest as ``str``."""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else format(value, float_format)
    return str(value)


def write_csv(
    rows: Sequence[Mapping],
    path: str | os.PathLike,
    columns: Sequence[str] | None = None,
    float_format: str = ".6g",
) -> Path:
    """Write dict rows to a CSV file (parent folders created); returns the path.

    Args:
        rows: at least one mapping; every row has the keys of ``columns``.
        path: the CSV file.
        columns: the keys written, in order (default: the keys of the first row); other
            keys of a row are left out.
        float_format: format spec of float cells (``".17g"`` round-trips a float64).
    """
    if not rows:
        raise ValueError(f"rows: got no rows for {path}, expected at least one")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0]) if columns is None else list(columns)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([format_value(row[key], float_format) for key in columns])
    return path


def markdown_table(
    rows: Sequence[Mapping],
    columns: Mapping[str, str] | None = None,
    formats: Mapping[str, str] | None = None,
) -> str:
    """A GitHub markdown table of dict rows.

    ``columns`` maps keys to headers (default: every key of the first row, as its own
    header); ``formats`` maps keys to format specs (e.g. ``".3g"``); other values are
    written by :func:`format_value`.
    """
    if not rows:
        raise ValueError("rows: got no rows, expected at least one")
    columns = {key: key for key in rows[0]} if columns is None else columns
    formats = {} if formats is None else formats
    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = [
            format(row[key], formats[key]) if key in formats else format_value(row[key])
            for key in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def pyplot():
    """``matplotlib.pyplot``, on the Agg backend unless pyplot is already loaded."""
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:  # a notebook keeps its inline backend
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 150) -> Path:
    """``tight_layout``, save as ``path`` (parent folders created), close; returns the path.

    Raster formats get ``dpi`` (150: sharp in a book column); SVG is resolution-free."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def section_markers(name: str) -> tuple[str, str]:
    """``("<!-- bench:name:begin -->", "<!-- bench:name:end -->")``."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise ValueError(f"name: got {describe(name)}, expected letters, digits, _ or -")
    return f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"


def write_section(path: str | os.PathLike, name: str, text: str) -> Path:
    """Put ``text`` between ``<!-- bench:name:begin -->`` and ``<!-- bench:name:end -->``.

    The section is replaced where the markers exist and appended otherwise; the rest of
    the file is kept byte for byte. A missing file is created with :data:`HEADER`.

    Args:
        path: the markdown file (usually ``BENCHMARKS.md``).
        name: section name, letters, digits, ``_`` and ``-`` (e.g. ``"conv2d"``,
            ``"lowrank"``).
        text: the markdown of the section (without markers).

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: the file holds more than one begin or end marker of the section, only
            one of the two, or the end before the begin.
    """
    begin, end = section_markers(name)
    if not isinstance(text, str):
        raise TypeError(f"text: got {describe(text)}, expected a str")
    path = Path(path)
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else HEADER
    n_begin, n_end = old.count(begin), old.count(end)
    if n_begin != n_end or n_begin > 1:
        what = "a marker is missing" if n_begin != n_end else "the section is repeated"
        raise ValueError(
            f"path: {path} has {n_begin} begin and {n_end} end markers of section "
            f"{name!r} ({what}), expected one of each or none"
        )
    if begin in old:
        start, stop = old.index(begin), old.index(end) + len(end)
        if stop < start:
            raise ValueError(f"path: {path} has the end marker of {name!r} before its begin")
        new = old[:start] + block + old[stop:]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
    return path
