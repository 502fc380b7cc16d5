"""The course's own configuration, read from ``nbgrader_config.py`` like nbgrader's.

One file configures a term: nbgrader's settings (course id, folders, exchange, zip_collect)
and the kit's (:class:`Course`: roster, due dates, extra-credit cells; :class:`LatePenalty`:
the late policy). Every command of the kit and of nbgrader reads the same file
(``$DNNK_COURSE_CONFIG``, default the repository's ``nbgrader_config.py``).

- :class:`Roster`: the class list, a CSV with the columns ``student_id, first_name,
  last_name, email, lms_user_id`` (and optionally ``sis_login_id``, ``section``); written
  into the gradebook's students (nbgrader has those fields) by :func:`sync_roster`.
- :class:`LatePenalty`: nbgrader's ``LateSubmissionPlugin`` with a per-day penalty.
- :class:`CanvasCollector` / :class:`TimeKeepingExtractor`: ``nbgrader zip_collect`` on a
  Canvas "Download Submissions" archive (see the class docstrings).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from nbgrader.plugins import ExtractorPlugin, FileNameCollectorPlugin, LateSubmissionPlugin
from traitlets import Dict, Enum, Float, Int, Unicode
from traitlets.config import Configurable

REPO = Path(__file__).resolve().parent.parent


def config_path() -> Path:
    """The course configuration file (``$DNNK_COURSE_CONFIG`` or ``nbgrader_config.py``)."""
    return Path(os.environ.get("DNNK_COURSE_CONFIG") or REPO / "nbgrader_config.py").resolve()


class Course(Configurable):
    """The kit's settings of one term (``c.Course.<name>`` in ``nbgrader_config.py``)."""

    roster = Unicode(
        "", help="the roster CSV (student_id, first_name, last_name, email, lms_user_id)"
    ).tag(config=True)
    duedates = Dict(
        help="assignment -> due date, e.g. {'precision': '2027-02-01 23:59:00 UTC'}"
    ).tag(config=True)
    extra_credit_cells = Dict(
        help="assignment -> grade ids of hand-graded bonus cells (extra credit in nbgrader)"
    ).tag(config=True)


@dataclass
class Settings:
    """The loaded configuration: nbgrader's traitlets config and the kit's values."""

    config: object  #: traitlets Config (pass as ``config=`` to nbgrader's classes)
    course_id: str
    roster: Path | None
    duedates: dict  #: assignment -> aware datetime (UTC)
    extra_credit_cells: dict

    def duedate(self, assignment: str) -> datetime | None:
        """The due date as nbgrader stores it (naive UTC), or None."""
        due = self.duedates.get(assignment)
        return None if due is None else due.astimezone(UTC).replace(tzinfo=None)


def _parse_due(assignment: str, text: str) -> datetime:
    from nbgrader.utils import parse_utc

    try:
        return parse_utc(text).replace(tzinfo=UTC)
    except Exception as error:  # noqa: BLE001 - named in the message
        raise ValueError(
            f"Course.duedates[{assignment!r}]: cannot read the date {text!r} ({error})"
        ) from error


@lru_cache(maxsize=8)
def _load(path: str, mtime: float, environ: tuple) -> Settings:
    from traitlets.config.loader import PyFileConfigLoader

    p = Path(path)
    config = PyFileConfigLoader(p.name, path=str(p.parent)).load_config()
    course = Course(config=config)
    course_id = config.CourseDirectory.get("course_id", "dnnkernels")
    roster = Path(course.roster).resolve() if course.roster else None
    duedates = {a: _parse_due(a, str(t)) for a, t in course.duedates.items()}
    return Settings(config, course_id, roster, duedates, dict(course.extra_credit_cells))


def load() -> Settings:
    """The course configuration (reloaded when the file or the ``DNNK_`` variables change)."""
    path = config_path()
    if not path.is_file():
        raise FileNotFoundError(f"DNNK_COURSE_CONFIG: no course configuration at {path}")
    environ = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("DNNK_")))
    return _load(str(path), path.stat().st_mtime, environ)


# ============================================================================ roster


@dataclass(frozen=True)
class Student:
    student_id: str
    first_name: str
    last_name: str
    email: str
    lms_user_id: str
    sis_login_id: str = ""
    section: str = ""

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def sortable_name(self) -> str:
        """Canvas's "Student" column: ``Last, First``."""
        return f"{self.last_name}, {self.first_name}".strip(", ")


ROSTER_COLUMNS = ("student_id", "first_name", "last_name", "email", "lms_user_id")


class Roster(dict):
    """student id -> :class:`Student`, read from the roster CSV."""

    @classmethod
    def read(cls, path: Path | None) -> Roster:
        roster = cls()
        if path is None:
            return roster
        if not Path(path).is_file():
            raise FileNotFoundError(f"Course.roster: no roster CSV at {path}")
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ROSTER_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"Course.roster: {path} has no column(s) {', '.join(missing)}")
            for line, row in enumerate(reader, start=2):
                sid = (row["student_id"] or "").strip()
                if not sid:
                    raise ValueError(f"Course.roster: {path}, line {line}: empty student_id")
                if sid in roster:
                    raise ValueError(f"Course.roster: {path}, line {line}: {sid!r} twice")
                roster[sid] = Student(
                    sid,
                    (row["first_name"] or "").strip(),
                    (row["last_name"] or "").strip(),
                    (row["email"] or "").strip(),
                    (row["lms_user_id"] or "").strip(),
                    (row.get("sis_login_id") or "").strip(),
                    (row.get("section") or "").strip(),
                )
        return roster

    def by_lms_id(self, lms_user_id: str) -> Student | None:
        return next((s for s in self.values() if s.lms_user_id == lms_user_id), None)


def roster() -> Roster:
    return Roster.read(load().roster)


def sync_roster(gb, students: Roster | None = None) -> None:
    """Write the roster's names, emails and LMS ids into the gradebook's students."""
    for s in (students if students is not None else roster()).values():
        gb.update_or_create_student(
            s.student_id,
            first_name=s.first_name,
            last_name=s.last_name,
            email=s.email,
            lms_user_id=s.lms_user_id,
        )


# ============================================================================ late policy


class LatePenalty(LateSubmissionPlugin):
    """nbgrader's late policy, with ``penalty_method = 'per_day'``.

    ``per_day``: the share of the notebook's score taken off per started day late (0.1: a
    submission 1 minute late loses 10 %, 25 hours late 20 %); from ``zero_after_days`` days
    late on, the whole score. 'none' and 'zero' are nbgrader's own.
    """

    penalty_method = Enum(("none", "zero", "per_day"), default_value="per_day").tag(config=True)
    per_day = Float(0.1, help="share of the score taken off per started day late").tag(config=True)
    zero_after_days = Int(7, help="days late from which the score is 0").tag(config=True)

    def late_submission_penalty(self, student_id, score, total_seconds_late):
        if self.penalty_method != "per_day":
            return super().late_submission_penalty(student_id, score, total_seconds_late)
        if total_seconds_late <= 0:
            return None
        days = math.ceil(total_seconds_late / 86400)
        if days >= self.zero_after_days:
            return score
        return score * min(1.0, self.per_day * days)


# ============================================================================ Canvas downloads

#: Canvas's file names in "Download Submissions": ``<name>_[LATE_]<user id>_<submission id>_
#: <file name>[-<n>].<ext>``; ``-<n>`` marks the n-th resubmission of the same file
CANVAS_REGEXP = (
    r"^(?P<name>[^_]+(?:_[^_]+)*?)_(?P<late>LATE_)?(?P<student_id>\d+)_(?P<submission_id>\d+)_"
    r"(?P<file_id>.+?)(?:-(?P<attempt>\d+))?(?P<ext>\.[A-Za-z0-9]+)$"
)


class TimeKeepingExtractor(ExtractorPlugin):
    """nbgrader's extractor, keeping each file's time (a zip member's date, a file's mtime).

    The time is what :class:`CanvasCollector` records as the submission time.
    """

    def extract(self, archive_path: str, extracted_path: str) -> None:
        for root, _, files in os.walk(archive_path):
            target = Path(extracted_path) / Path(root).relative_to(archive_path)
            target.mkdir(parents=True, exist_ok=True)
            for name in files:
                source = Path(root) / name
                if source.suffix in self.zip_ext and zipfile.is_zipfile(source):
                    folder = target / source.stem
                    with zipfile.ZipFile(source) as archive:
                        for member in archive.infolist():
                            if member.is_dir():
                                continue
                            out = folder / Path(member.filename).name
                            folder.mkdir(parents=True, exist_ok=True)
                            with archive.open(member) as src, open(out, "wb") as dst:
                                shutil.copyfileobj(src, dst)
                            stamp = time.mktime((*member.date_time, 0, 0, -1))
                            os.utime(out, (stamp, stamp))
                else:
                    shutil.copy2(source, target / name)


class CanvasCollector(FileNameCollectorPlugin):
    """``zip_collect`` on Canvas's file names (:data:`CANVAS_REGEXP`).

    - the Canvas user id is looked up in the roster (``lms_user_id``); a file of a student
      not in the roster is skipped, with a warning naming it;
    - of several attempts at the same file (``svd_rank.ipynb``, ``svd_rank-1.ipynb``, ...)
      the newest (highest number) is collected, the others are skipped;
    - the submission time is the file's time (:class:`TimeKeepingExtractor`); Canvas's
      ``LATE`` flag decides lateness: a file Canvas calls on time is never late, and a LATE
      file whose time is not after the due date gets the due date plus one second (late,
      by an unknown amount; a warning says so).
    """

    named_regexp = Unicode(CANVAS_REGEXP).tag(config=True)

    def _attempt(self, path: Path, info: dict) -> int:
        return int(info.get("attempt") or 0)

    def collect(self, submitted_file: str):
        path = Path(submitted_file)
        info = self._match(path.name)
        if info is None:
            return None
        student = roster().by_lms_id(info["student_id"])
        if student is None:
            self.log.warning(
                "Skipped %s: Canvas user %s is not in the roster (Course.roster)",
                path.name,
                info["student_id"],
            )
            return None
        mine = self._attempt(path, info)
        for sibling in path.parent.iterdir():
            other = self._match(sibling.name) if sibling != path else None
            if (
                other
                and other["student_id"] == info["student_id"]
                and other["file_id"] == info["file_id"]
                and self._attempt(sibling, other) > mine
            ):
                self.log.info("Skipped %s: %s is a newer attempt", path.name, sibling.name)
                return None
        assignment = self.parent.coursedir.assignment_id if self.parent else ""
        due = load().duedates.get(assignment)
        stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if due is not None:
            if info.get("late") and stamp <= due:
                self.log.warning(
                    "%s: Canvas marks it LATE but its time is not after the due date: "
                    "recorded as due date + 1 s (edit timestamp.txt if you know the time)",
                    path.name,
                )
                stamp = due + timedelta(seconds=1)
            elif not info.get("late") and stamp > due:
                stamp = due
        return {
            "student_id": student.student_id,
            "file_id": info["file_id"] + info["ext"],
            "first_name": student.first_name,
            "last_name": student.last_name,
            "email": student.email,
            "timestamp": stamp.strftime("%Y-%m-%d %H:%M:%S.%f %Z"),
        }
