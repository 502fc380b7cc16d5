"""The sandboxes' uids: one unprivileged uid per job, and what ``/proc`` says about it.

A job leases a uid of its own (:class:`UidLease`: an ``flock`` on a per-uid file in a
folder only the grader can read), from a range no account on the machine uses. Everything
the grader later learns about the job's processes comes from ``/proc``, read outside the
sandbox: which processes have the uid (:func:`processes_of`), their CPU time
(:func:`cpu_seconds`, :func:`cpu_of`), whether the sandbox is being torn down
(:func:`dying`), and at the end every one of them is killed (:func:`kill_uid`).
"""

from __future__ import annotations

import fcntl
import os
import signal
import tempfile
import threading
import time
from pathlib import Path


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot build the sandbox on this machine (grading must stop)."""


#: first uid of the sandboxes and how many concurrent jobs a machine may run; the range
#: must hold no account (``DNNK_SANDBOX_UID_BASE`` moves it)
UID_BASE = int(os.environ.get("DNNK_SANDBOX_UID_BASE", "2100000000"))
UID_SLOTS = 4096


def _runtime_dir() -> Path:
    """A folder only the grader can read, for the uid locks."""
    for base in ("/run", tempfile.gettempdir()):
        folder = Path(base) / f"dnnk-sandbox-{os.geteuid()}"
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            if folder.stat().st_uid == os.geteuid() and os.access(folder, os.W_OK):
                folder.chmod(0o700)
                return folder
        except OSError:
            continue
    raise SandboxUnavailable("no writable runtime folder for the sandbox's uid locks")


def processes_of(uid: int) -> list[int]:
    """Pids of the processes whose real uid is ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as handle:
                for line in handle:
                    if line.startswith(b"Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
        except (OSError, ValueError, IndexError):
            continue
    return pids


def _status(pid: int) -> dict[str, bytes]:
    with open(f"/proc/{pid}/status", "rb") as handle:
        return {
            k.strip().decode(): v.strip() for k, _, v in (line.partition(b":") for line in handle)
        }


def dying(uid: int) -> bool:
    """Is the sandbox of ``uid`` being torn down (its stage-2 bwrap or that one's child dead,
    or a SIGKILL pending on one of them)?

    ``kill(2)`` queues the signal before it returns, so a cell that SIGKILLs its parent is
    caught here as soon as the cell ends, not during the next cell when the kernel gets
    round to it."""
    spine = []
    statuses = {}
    for pid in processes_of(uid):
        try:
            statuses[pid] = _status(pid)
        except OSError:  # gone since the listing: the others tell
            continue
    for pid, st in statuses.items():
        parent = int(st.get("PPid", b"0") or 0)
        if parent not in statuses:  # the stage-2 bwrap (its parent runs as root)
            spine.append(pid)
            spine.extend(p for p, s in statuses.items() if int(s.get("PPid", b"0")) == pid)
    if not spine:
        return True
    for pid in spine:
        st = statuses[pid]
        pending = int(st.get("SigPnd", b"0"), 16) | int(st.get("ShdPnd", b"0"), 16)
        if st.get("State", b"R")[:1] in (b"Z", b"X") or pending & (1 << (signal.SIGKILL - 1)):
            return True
    return False


def kill_uid(uid: int, rounds: int = 50) -> int:
    """SIGKILL every process of ``uid`` until none is left; returns how many were killed."""
    killed = 0
    for _ in range(rounds):
        pids = processes_of(uid)
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"processes of sandbox uid {uid} survive SIGKILL: {processes_of(uid)}")


def _stat(pid: int | str) -> list[bytes]:
    """Fields of ``/proc/<pid>/stat`` from the state on (field 3 is index 0)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return handle.read().rsplit(b")", 1)[1].split()


def cpu_of(pids, session: int | None = None) -> float:
    """User + system CPU seconds of ``pids`` and their reaped children (only those of
    ``session`` if given); processes gone meanwhile count nothing."""
    total = 0
    for pid in pids:
        try:
            fields = _stat(pid)
            if session is None or int(fields[3]) == session:  # field 6: the session id
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (OSError, ValueError, IndexError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def cpu_seconds(uid: int) -> float:
    """User + system CPU time of every process of ``uid`` (and their reaped children)."""
    return cpu_of(processes_of(uid))


class UidLease:
    """An exclusive sandbox uid for one job, held by an ``flock`` on a per-uid file."""

    def __init__(self) -> None:
        folder = _runtime_dir()
        start = (os.getpid() * 7919 + threading.get_ident()) % UID_SLOTS
        for step in range(UID_SLOTS):
            slot = (start + step) % UID_SLOTS
            handle = open(folder / f"uid-{slot}.lock", "a+")  # noqa: SIM115 - held open
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.uid = UID_BASE + slot
            self._handle = handle
            kill_uid(self.uid)  # a crashed grader's leftovers, if any
            return
        raise SandboxUnavailable(f"all {UID_SLOTS} sandbox uids are in use")

    def release(self) -> None:
        if self._handle is not None:
            kill_uid(self.uid)
            self._handle.close()
            self._handle = None
