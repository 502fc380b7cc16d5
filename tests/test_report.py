"""dnnkernels.report: machine line, CSV and markdown tables, BENCHMARKS.md sections."""

from __future__ import annotations

import csv
import math

import pytest

from dnnkernels import report


def test_machine_line_names_cores_threads_and_torch():
    machine = report.machine_description(1)
    assert "logical cores" in machine and "torch" in machine and "1 thread" in machine, machine
    assert "2 threads" in report.machine_description(2), "plural for several threads"


def test_csv_and_markdown_of_hand_rows(tmp_path):
    rows = [{"k": 1, "err": 0.123456789, "name": "a"}, {"k": 2, "err": math.nan, "name": "b"}]
    path = report.write_csv(rows, tmp_path / "sub" / "t.csv")
    with open(path, newline="") as stream:
        assert list(csv.reader(stream)) == [
            ["k", "err", "name"],
            ["1", "0.123457", "a"],
            ["2", "nan", "b"],
        ], "CSV: header, then floats with 6 significant digits"
    path = report.write_csv(rows, tmp_path / "t17.csv", columns=["err"], float_format=".17g")
    assert path.read_text().splitlines() == ["err", "0.123456789", "nan"], "columns, .17g"
    text = report.markdown_table(rows, {"k": "rank", "err": "error"}, {"err": ".2f"})
    assert text == "| rank | error |\n|---|---|\n| 1 | 0.12 |\n| 2 | nan |\n", text
    with pytest.raises(ValueError, match="no rows"):
        report.write_csv([], tmp_path / "empty.csv")


def test_write_section_preserves_other_sections(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    report.write_section(path, "conv2d", "conv v1")
    assert path.read_text().startswith("# Benchmarks")
    report.write_section(path, "lowrank", "written by another command\n\nwith two paragraphs")
    report.write_section(path, "conv2d", "conv v2")
    text = path.read_text()
    assert "conv v1" not in text and text.count("conv v2") == 1
    lowrank = "written by another command\n\nwith two paragraphs"
    assert f"<!-- bench:lowrank:begin -->\n{lowrank}\n<!-- bench:lowrank:end -->" in text
    assert text.index("bench:conv2d:end") < text.index("bench:lowrank:begin")  # order kept
    before = text
    report.write_section(path, "conv2d", "conv v2")
    assert path.read_text() == before  # idempotent


def test_write_section_bad_input(tmp_path):
    path = tmp_path / "B.md"
    with pytest.raises(ValueError, match="name: got str 'a b'"):
        report.write_section(path, "a b", "x")
    with pytest.raises(TypeError, match="text: got int"):
        report.write_section(path, "ok", 3)
    path.write_text("<!-- bench:x:begin -->\n<!-- bench:x:begin -->\n<!-- bench:x:end -->\n")
    with pytest.raises(ValueError, match="2 begin and 1 end markers"):
        report.write_section(path, "x", "y")


def test_write_section_refuses_a_half_section(tmp_path):
    path = tmp_path / "B.md"
    path.write_text("# B\n<!-- bench:x:begin -->\nno end marker\n")
    with pytest.raises(ValueError, match="1 begin and 0 end markers"):
        report.write_section(path, "x", "y")
    assert path.read_text() == "# B\n<!-- bench:x:begin -->\nno end marker\n", "file changed"
