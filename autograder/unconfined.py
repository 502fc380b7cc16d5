"""``--no-sandbox``: student code run without any confinement, for trusted code only.

The same :class:`~autograder.sandbox.Spec` as a sandboxed process, run as the grader's
own user, with the sandbox's inside paths mapped to folders of a private temporary
directory. It exists to measure the sandbox's cost (``make bench``) and to debug; the
grader warns on every run that uses it (:func:`autograder.sandbox.warn_insecure`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from autograder.sandbox import INSIDE_DATA, INSIDE_IPC, Spec, inside_layout, kill_session
from autograder.uids import cpu_of


class UnconfinedProcess:
    """``--no-sandbox``: the same command, unconfined, with the inside paths on the host.

    The inside paths (``/submission``, ``/tmp``, ``/opt/dnnk/...``, ``/run/dnnk``) are
    replaced by folders of a private temporary directory in the command, the environment,
    the working directory and the JSON configuration files the grader writes.
    """

    def __init__(self, spec: Spec, stdout, stderr) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="dnnk-unconfined-"))
        layout = inside_layout(spec)
        self.mapping = {
            layout.work: self.root / "submission",
            layout.tmp: self.root / "tmp",
            layout.lib: self.root / "lib",
            layout.student: self.root / "student",
            INSIDE_IPC: self.root / "ipc",
        }
        if spec.data_dir is not None:
            self.mapping[INSIDE_DATA] = Path(spec.data_dir)
        for folder in (layout.work, layout.tmp, layout.lib, layout.student, INSIDE_IPC):
            self.mapping[folder].mkdir(parents=True, exist_ok=True)
        (self.mapping[layout.student] / "dnnkernels").symlink_to(spec.student_build)
        for path in spec.lib_files:
            (self.mapping[layout.lib] / Path(path).name).symlink_to(path)
        (self.mapping[layout.tmp] / "matplotlib").mkdir(exist_ok=True)
        for dest, content in spec.files.items():
            target = Path(self.outside(dest))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(
                self.outside(content.decode()).encode() if dest.endswith(".json") else content
            )
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": layout.tmp,
            "TMPDIR": layout.tmp,
            "LANG": "C.UTF-8",
            "PYTHONPATH": layout.student,
            "PYTHONDONTWRITEBYTECODE": "1",
            "MPLCONFIGDIR": f"{layout.tmp}/matplotlib",
            **({"DNNK_DATA_DIR": layout.data} if layout.data else {}),
            **spec.env,
        }
        self.popen = subprocess.Popen(
            [self.outside(a) for a in spec.argv],
            cwd=self.outside(spec.cwd or layout.work),
            env={k: self.outside(v) for k, v in env.items()},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            pass_fds=spec.pass_fds,
            start_new_session=True,
        )
        self.uid = os.geteuid()
        self.cpu = 0.0

    def outside(self, text: str) -> str:
        """``text`` with every inside path replaced by its host folder (in one pass).

        The Python installation and the virtual environment are bound at their own paths
        in the sandbox, so paths under them are the same on both sides and stay as they
        are (a checkout under ``/tmp`` is not the sandbox's ``/tmp``)."""
        same = sorted(
            {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
            | {sys.prefix, sys.base_prefix, sys.exec_prefix},
            key=len,
            reverse=True,
        )
        keys = sorted(self.mapping, key=len, reverse=True)
        alternatives = "|".join(map(re.escape, same + keys))
        pattern = r"(?<![\w./-])(" + alternatives + r")(?![\w.-])"

        def replace(match: re.Match) -> str:
            found = match.group(1)
            return found if found in same else str(self.mapping[found])

        return re.sub(pattern, replace, text)

    pid = property(lambda self: self.popen.pid)

    def host_path(self, inside: str) -> str:
        return self.outside(inside)

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def cpu_seconds(self) -> float:
        """CPU seconds of the processes of its session (it is the session leader)."""
        pids = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
        return cpu_of(pids, session=self.popen.pid)

    def dying(self) -> bool:
        return self.popen.poll() is not None

    def kill(self) -> None:
        kill_session(self.popen)

    def close(self) -> None:
        if self.popen.poll() is None:  # the last reading, as for a sandbox
            self.cpu = max(self.cpu, self.cpu_seconds())
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)
