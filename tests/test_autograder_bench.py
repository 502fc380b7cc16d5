"""The grading benchmark's bookkeeping: targets judged from the numbers, sections kept.

No timing is asserted (the machine is shared); the measured runs are ``make bench``'s.
"""

from __future__ import annotations

import pytest

from autograder import bench


def _run(cpu, per_minute, stages=None):
    return {
        "cpu": cpu,
        "wall": cpu * 1.1,
        "per_minute": per_minute,
        "jobs_wall": 5.0,
        "n": 2,
        "stages": stages or {"execute": {"cpu": cpu, "wall": cpu}, "total": {"wall": cpu}},
        "client": {"feedback": {"cpu": 0.5, "wall": 0.6}},
    }


def _results():
    return {
        "precision": {
            "plain": {"cpu": 10.0, "wall": 11.0},
            "sandbox": _run(12.0, 4.0),  # ratio 1.2: met
            "open": _run(11.5, 4.2),  # sandbox cost +4 %: met
            "two": _run(12.0, 9.0),
        },
        "mnist": {
            "plain": {"cpu": 10.0, "wall": 11.0},
            "sandbox": _run(14.0, 3.0),  # ratio 1.4: missed
            "open": _run(12.0, 3.5),  # +17 %: missed
            "two": _run(14.0, 12.0),
        },
    }


def test_targets_are_judged_from_the_numbers():
    text = bench.section(_results(), (0.5, 1.5), 600)
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if "| 10.0 |" in line}
    assert "1.20 met" in rows["precision"] and "+4% met" in rows["precision"], rows["precision"]
    assert "1.40 **missed**" in rows["mnist"] and "+17% **missed**" in rows["mnist"], rows["mnist"]
    # (9 + 12) / 2 = 10.5 per minute on two workers: the throughput target is met
    assert "**10.5 submissions per minute** measured (target >= 10: met)" in text, text
    # from CPU: 120 / 12 = 10 and 120 / 14 = 8.57 per minute on two idle cores, mean 9.3
    assert "2 idle cores would grade 9.3 per minute (**missed**)" in text, text
    # 1,200 submissions x 13 CPU-s (mean of 12 and 14) on 8 cores = 0.54 h
    assert "| 8 | 0.54 |" in text, text
    assert "job: execute" in text and "client: feedback" in text and "job: total" not in text


def test_update_section_keeps_the_other_sections(tmp_path):
    path = tmp_path / "B.md"
    path.write_text("# B\n\n<!-- bench:x:begin -->\nX\n<!-- bench:x:end -->\n")
    bench.update_section(path, "first")
    bench.update_section(path, "second")
    text = path.read_text()
    assert text.count(bench.BEGIN) == 1 and "second" in text and "first" not in text, text
    assert "<!-- bench:x:begin -->\nX\n<!-- bench:x:end -->" in text, text


def test_update_section_refuses_a_half_section(tmp_path):
    path = tmp_path / "B.md"
    path.write_text(f"# B\n{bench.BEGIN}\nno end marker\n")
    with pytest.raises(ValueError, match="missing"):
        bench.update_section(path, "body")
