"""The bubblewrap sandbox (autograder/sandbox.py): what a process inside can and cannot do.

Each test starts a real sandbox as the grader does (two bubblewrap stages, a uid of the
job's own) and runs a small probe inside, which prints what it found as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from autograder import sandbox, uids
from autograder.limits import Limits
from autograder.paths import REPO, grading_dir, release_dir
from autograder.student import LIB_FILES

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox drops uids: needs root")


def run_inside(code: str, limits: Limits | None = None, **spec_args) -> tuple[dict, int]:
    """Run ``code`` (which prints one JSON object) in a sandbox; (that object, its uid)."""
    spec = sandbox.Spec(
        argv=[sys.executable, "-I", "-c", textwrap.dedent(code)],
        student_build=release_dir() / "dnnkernels",
        lib_files=LIB_FILES,
        limits=limits or Limits(),
        **spec_args,
    )
    proc = sandbox.launch(spec, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.popen.communicate(timeout=120)
    finally:
        proc.close()
    assert proc.popen.returncode == 0, err.decode()[-2000:]
    return json.loads(out.decode().strip().splitlines()[-1]), proc.uid


def test_own_unprivileged_uid_and_namespaces():
    found, uid = run_inside(
        """
        import json, os
        print(json.dumps({"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                          "groups": os.getgroups(), "pids": sorted(
                              int(p) for p in os.listdir("/proc") if p.isdigit()),
                          "hostname": os.uname().nodename}))
        """
    )
    assert found["uid"] == found["euid"] == found["gid"] == uid
    assert uids.UID_BASE <= uid < uids.UID_BASE + uids.UID_SLOTS
    assert uid not in (0, os.getuid())
    assert found["groups"] in ([], [uid])
    assert max(found["pids"]) < 20, "the sandbox sees processes outside its pid namespace"
    assert found["hostname"] == "sandbox"


def test_allow_list_file_system():
    """Only the Python environment, the student build and the sandbox's own folders exist."""
    secret_places = [
        REPO / "src",
        REPO / "autograder",
        REPO / "tests",
        REPO / "build",
        REPO / "source",
        grading_dir(),
        "/etc/shadow",
        "/home",
        "/var",
        os.path.expanduser("~/.cache"),
        os.path.expanduser("~/.bash_history"),
    ]
    found, _ = run_inside(
        f"""
        import json, os
        places = {[str(p) for p in secret_places]!r}
        print(json.dumps({{"exists": [p for p in places if os.path.lexists(p)],
                           "root": sorted(os.listdir("/")),
                           "student": os.listdir("/opt/dnnk/student/dnnkernels")}}))
        """
    )
    assert found["exists"] == [], f"visible in the sandbox: {found['exists']}"
    assert "conv2d.py" in found["student"]
    assert set(found["root"]) <= {
        "bin",
        "sbin",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "usr",
        "etc",
        "opt",
        "proc",
        "dev",
        "tmp",
        "submission",
        "run",
        *{p.split("/")[1] for p in (sys.prefix, sys.base_prefix)},
    }


def test_read_only_outside_its_tmpfs_and_size_capped():
    limits = Limits(tmpfs_bytes=8 << 20, file_bytes=4 << 20)
    found, _ = run_inside(
        """
        import json, os
        result = {}
        for path in ["/usr/evil", "/opt/dnnk/student/dnnkernels/conv2d.py", "/etc/passwd",
                     os.__file__]:
            try:
                open(path, "a").write("x")
                result[path] = "written"
            except OSError as error:
                result[path] = error.errno
        written = 0
        try:
            with open("/tmp/big", "wb") as handle:
                for _ in range(64):
                    handle.write(b"x" * (1 << 20))
                    written += 1
        except OSError as error:
            result["big"] = error.errno
        result["written_mb"] = written
        open("/submission/ok.txt", "w").write("fine")
        print(json.dumps(result))
        """,
        limits=limits,
    )
    assert "written" not in found.values(), found
    assert found["written_mb"] <= 8, "the tmpfs or file-size cap did not stop the writes"


def test_no_network_and_cleared_environment():
    os.environ["DNNK_TEST_SECRET"] = "do-not-leak"
    try:
        found, _ = run_inside(
            """
            import json, os, socket
            result = {"env": dict(os.environ)}
            try:
                socket.create_connection(("127.0.0.1", 22), timeout=2)
                result["net"] = "connected"
            except OSError as error:
                result["net"] = error.errno
            result["interfaces"] = [name for _, name in socket.if_nameindex()]
            result["fds"] = sorted(int(f) for f in os.listdir("/proc/self/fd"))
            print(json.dumps(result))
            """
        )
    finally:
        del os.environ["DNNK_TEST_SECRET"]
    assert found["net"] != "connected"
    assert found["interfaces"] == ["lo"]
    assert "DNNK_TEST_SECRET" not in found["env"]
    assert not [k for k in found["env"] if k.startswith(("VIRTUAL_ENV", "DNNK_GRADING"))]
    assert found["fds"][:3] == [0, 1, 2] and len(found["fds"]) <= 4  # + the listing's own fd


def test_only_the_given_pipes_are_inherited():
    keep_r, keep_w = os.pipe()
    leak_r, leak_w = os.pipe()
    os.set_inheritable(leak_w, True)
    try:
        found, _ = run_inside(
            f"""
            import json, os
            os.write({keep_w}, b"hello")
            print(json.dumps({{"fds": sorted(int(f) for f in os.listdir("/proc/self/fd"))}}))
            """,
            pass_fds=(keep_w,),
        )
        assert os.read(keep_r, 5) == b"hello"
        assert leak_w not in found["fds"]
    finally:
        for fd in (keep_r, keep_w, leak_r, leak_w):
            os.close(fd)


def test_nothing_outlives_the_sandbox():
    """A daemon (double fork, new session) dies with its sandbox; the uid lease is free."""
    spec = sandbox.Spec(
        argv=[
            sys.executable,
            "-I",
            "-c",
            "import os, time\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(600)\n"
            "    os._exit(0)\n"
            "time.sleep(600)\n",
        ],
        student_build=release_dir() / "dnnkernels",
        lib_files=LIB_FILES,
        limits=Limits(),
    )
    proc = sandbox.launch(spec)
    deadline = time.monotonic() + 30
    while len(uids.processes_of(proc.uid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(uids.processes_of(proc.uid)) >= 3, "the daemon did not start"
    uid = proc.uid
    proc.close()
    assert uids.processes_of(uid) == []


def test_limits_hold_inside():
    limits = Limits(memory_bytes=1 << 30, processes=64, open_files=128)
    found, _ = run_inside(
        """
        import json, resource
        names = ["RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_CORE", "RLIMIT_FSIZE"]
        print(json.dumps({n: resource.getrlimit(getattr(resource, n)) for n in names}))
        """,
        limits=limits,
    )
    assert found["RLIMIT_AS"] == [1 << 30, 1 << 30]
    assert found["RLIMIT_NPROC"] == [64, 64]
    assert found["RLIMIT_NOFILE"] == [128, 128]
    assert found["RLIMIT_CORE"] == [0, 0]
    assert found["RLIMIT_FSIZE"] == [limits.file_bytes] * 2


def test_probe_fails_closed_without_user_namespaces():
    """Where user namespaces are off, grading stops with one clear error (not unsandboxed)."""
    script = (
        f"import sys; sys.path[:0] = [{str(REPO)!r}]\n"
        "from autograder import sandbox\n"
        "from autograder.student import LIB_FILES\n"
        "from autograder.paths import release_dir\n"
        "try:\n"
        "    sandbox.probe(release_dir() / 'dnnkernels', LIB_FILES)\n"
        "except sandbox.SandboxUnavailable as error:\n"
        "    print('UNAVAILABLE', error)\n"
        "else:\n"
        "    print('SANDBOXED')\n"
    )
    # a user namespace in which no further user namespace may be created (uid 0 inside)
    outer = [
        sandbox.bwrap_path(),
        "--unshare-user",
        "--uid",
        "0",
        "--gid",
        "0",
        "--disable-userns",
        "--bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        sys.executable,
        "-c",
        script,
    ]
    out = subprocess.run(outer, capture_output=True, text=True, timeout=120)
    assert "UNAVAILABLE" in out.stdout, out.stdout + out.stderr
    assert "namespace" in out.stdout.lower() or "uid" in out.stdout.lower()


def test_no_sandbox_mode_warns(monkeypatch, capsys):
    monkeypatch.setenv(sandbox.INSECURE_ENV, "1")
    with pytest.warns(UserWarning, match="WITHOUT the sandbox"):
        sandbox.warn_insecure()
    assert "trusted code only" in capsys.readouterr().err


@pytest.mark.parametrize("insecure", ["", "1"], ids=["sandbox", "no-sandbox"])
def test_cpu_of_a_busy_process_is_measured(monkeypatch, insecure):
    """About 1.5 CPU-s spent in a child of the sandboxed process, read back from /proc
    (the benchmark compares the two modes, so both must count the same processes)."""
    monkeypatch.setenv(sandbox.INSECURE_ENV, insecure)
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.5: pass\n"
    spec = sandbox.Spec(
        argv=[
            sys.executable,
            "-I",
            "-c",
            "import subprocess, sys, time\n"
            f"subprocess.run([sys.executable, '-c', {busy!r}])\n"
            "print('done', flush=True)\n"
            "time.sleep(600)\n",
        ],
        student_build=release_dir() / "dnnkernels",
        lib_files=LIB_FILES,
        limits=Limits(),
    )
    proc = sandbox.launch(spec, stdout=subprocess.PIPE)
    try:
        assert proc.popen.stdout.readline().strip() == b"done"
    finally:
        proc.close()
    assert 1.4 <= proc.cpu <= 10, f"measured {proc.cpu} CPU-s for a 1.5 CPU-s child"
