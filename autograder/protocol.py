"""Wire format between the trusted grader and the untrusted runner: JSON plus ``.npy`` bytes.

Messages travel over pipes as :mod:`multiprocessing.connection` messages (length-prefixed
byte strings): one UTF-8 JSON header, then one message per binary blob (the header says how
many). The receiving side caps every length, so a runner cannot make the grader allocate
more than the limits below. Arrays travel as the bytes of
``np.save(..., allow_pickle=False)`` and are read back with
``np.load(..., allow_pickle=False)``: nothing is ever unpickled, and only numeric and bool
dtypes are accepted. Values are encoded as JSON specs:

- ``None``, ``bool``, ``int``, ``float``, ``str``: themselves (exact built-in types only);
- ``{"t": "tensor", "dtype": "float32", "b": i}``: a torch tensor (blob ``i``); bfloat16
  travels as float32 and is converted back;
- ``{"t": "ndarray", "b": i}``, ``{"t": "npscalar", "b": i}``: a numpy array / scalar;
- ``{"t": "tuple" | "list", "v": [...]}`` and ``{"t": "dict", "v": {str: spec}}``;
- ``{"t": "dtype", "v": "float32"}``: a torch dtype.

Both processes load this file: the runner by path, before its audit hook is installed (it
imports nothing from the ``autograder`` package), the grader as ``autograder.protocol``.
"""

from __future__ import annotations

import io
import json
from multiprocessing.connection import Connection

import numpy as np

MAX_HEADER = 16 << 20  # bytes of JSON header per message
MAX_BLOBS = 512 << 20  # bytes of arrays per message
MAX_ITEMS = 256  # entries of one tuple / list / dict
MAX_DEPTH = 6
MAX_STR = 20_000

TORCH_DTYPES = (
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
    "complex128",
    "uint8",
    "int8",
    "int16",
    "int32",
    "int64",
    "bool",
)
NUMERIC_KINDS = "biufc"


class ProtocolError(Exception):
    """A message or value that breaks the wire format (or its size limits)."""


class Timeout(Exception):
    """No message arrived before the deadline."""


class Closed(Exception):
    """The other end closed the pipe (for the runner: it exited or was killed)."""


# ---------------------------------------------------------------------------- messages

MAX_BLOB_COUNT = 4096


def pipe_connection(read_fd: int, write_fd: int) -> tuple[Connection, Connection]:
    """(receiving, sending) connections on two pipe file descriptors (owned from now on)."""
    return Connection(read_fd, writable=False), Connection(write_fd, readable=False)


def send(conn: Connection, header: dict, blobs: list[bytes] = ()) -> None:
    """Send one header and its blobs."""
    conn.send_bytes(json.dumps(dict(header, blobs=len(blobs))).encode())
    for blob in blobs:
        conn.send_bytes(blob)


def _recv(conn: Connection, limit: int) -> bytes:
    try:
        return conn.recv_bytes(max(limit, 1))
    except EOFError:
        raise Closed() from None
    except OSError as error:  # longer than the limit, or the pipe broke
        raise ProtocolError(f"unreadable message ({error})") from None


def receive(conn: Connection, timeout: float | None = None) -> tuple[dict, list[bytes]]:
    """One header and its blobs; Timeout if nothing starts to arrive within ``timeout`` s.

    A sender that stops in the middle of a message blocks this call: the grader's watchdog
    kills the runner at its deadline, which closes the pipe (:class:`Closed`).
    """
    try:
        if timeout is not None and not conn.poll(max(timeout, 0)):
            raise Timeout()
    except (EOFError, OSError):
        raise Closed() from None
    try:
        header = json.loads(_recv(conn, MAX_HEADER).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"unreadable header: {error}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    count = header.get("blobs", 0)
    if type(count) is not int or not 0 <= count <= MAX_BLOB_COUNT:
        raise ProtocolError("bad blob count")
    blobs, total = [], 0
    for _ in range(count):
        blob = _recv(conn, MAX_BLOBS - total)
        total += len(blob)
        blobs.append(blob)
    return header, blobs


# ---------------------------------------------------------------------------- values


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _load_npy(blob: bytes) -> np.ndarray:
    try:
        array = np.load(io.BytesIO(blob), allow_pickle=False)
    except Exception as error:  # noqa: BLE001 - any malformed blob is a protocol error
        raise ProtocolError(f"unreadable array: {type(error).__name__}: {error}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in NUMERIC_KINDS:
        raise ProtocolError(f"array of dtype {getattr(array, 'dtype', '?')} is not numeric")
    return array


def _tensor_to_numpy(torch, value) -> tuple[np.ndarray, str]:
    """Plain numpy copy of a tensor (any subclass), without running its Python overrides."""
    with torch._C.DisableTorchFunctionSubclass():
        t = torch.Tensor.detach(value)
        t = torch.Tensor.cpu(t)
        t = torch.Tensor.resolve_neg(torch.Tensor.resolve_conj(t))
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in TORCH_DTYPES:
            raise ProtocolError(f"tensor dtype torch.{dtype} is not supported")
        if dtype == "bfloat16":
            t = torch.Tensor.float(t)
        array = torch.Tensor.numpy(torch.Tensor.contiguous(t)).copy()
    if type(array) is not np.ndarray:
        raise ProtocolError("tensor did not convert to a numpy array")
    return array, dtype


def encode(value, blobs: list[bytes], depth: int = 0):
    """JSON spec of ``value``; arrays are appended to ``blobs``."""
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    torch = _torch()
    kind = type(value)
    if value is None or kind is bool or kind is str:
        if kind is str and len(value) > MAX_STR:
            raise ProtocolError(f"string of {len(value)} characters")
        return value
    if kind is int or kind is float:
        return value
    if isinstance(value, int) and not isinstance(value, np.generic):
        return int.__index__(value)
    if isinstance(value, float) and not isinstance(value, np.generic):
        return float.__float__(value)
    if torch is not None and isinstance(value, torch.Tensor):
        array, dtype = _tensor_to_numpy(torch, value)
        blobs.append(_npy_bytes(array))
        return {"t": "tensor", "dtype": dtype, "b": len(blobs) - 1}
    if torch is not None and isinstance(value, torch.dtype):
        return {"t": "dtype", "v": str(value).removeprefix("torch.")}
    if isinstance(value, np.ndarray):
        array = np.array(value, copy=True, subok=False)
        if array.dtype.kind not in NUMERIC_KINDS:
            raise ProtocolError(f"numpy array of dtype {array.dtype} is not numeric")
        blobs.append(_npy_bytes(array))
        return {"t": "ndarray", "b": len(blobs) - 1}
    if isinstance(value, np.generic):
        array = np.array(value, subok=False)
        if array.dtype.kind not in NUMERIC_KINDS:
            raise ProtocolError(f"numpy scalar of dtype {array.dtype} is not numeric")
        blobs.append(_npy_bytes(array))
        return {"t": "npscalar", "b": len(blobs) - 1}
    if isinstance(value, (tuple, list)):
        items = tuple.__iter__(value) if isinstance(value, tuple) else list.__iter__(value)
        items = list(items)
        if len(items) > MAX_ITEMS:
            raise ProtocolError(f"sequence of {len(items)} items")
        tag = "tuple" if isinstance(value, tuple) else "list"
        return {"t": tag, "v": [encode(v, blobs, depth + 1) for v in items]}
    if isinstance(value, dict):
        items = list(dict.items(value))
        if len(items) > MAX_ITEMS:
            raise ProtocolError(f"dict of {len(items)} items")
        out = {}
        for key, item in items:
            if type(key) is not str:
                raise ProtocolError("dict keys must be str")
            out[key] = encode(item, blobs, depth + 1)
        return {"t": "dict", "v": out}
    raise ProtocolError(
        f"an object of type {type(value).__name__} is not a tensor, array, number or tuple of those"
    )


def decode(spec, blobs: list[bytes], depth: int = 0):
    """Value of a spec made by :func:`encode`; tensors come back as torch tensors."""
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    if spec is None or type(spec) in (bool, int, float, str):
        return spec
    if type(spec) is not dict or "t" not in spec:
        raise ProtocolError("malformed value")
    tag = spec["t"]
    if tag in ("tensor", "ndarray", "npscalar"):
        index = spec.get("b")
        if type(index) is not int or not 0 <= index < len(blobs):
            raise ProtocolError("bad blob index")
        array = _load_npy(blobs[index])
        if tag == "ndarray":
            return array
        if tag == "npscalar":
            if array.ndim != 0:
                raise ProtocolError("numpy scalar with dimensions")
            return array[()]
        torch = _torch()
        dtype_name = spec.get("dtype")
        if dtype_name not in TORCH_DTYPES:
            raise ProtocolError(f"tensor dtype {dtype_name!r} is not supported")
        tensor = torch.from_numpy(np.ascontiguousarray(array).copy())
        return tensor.to(getattr(torch, dtype_name))
    if tag == "dtype":
        if spec.get("v") not in TORCH_DTYPES:
            raise ProtocolError("unknown dtype")
        return getattr(_torch(), spec["v"])
    if tag in ("tuple", "list"):
        items = spec.get("v")
        if type(items) is not list or len(items) > MAX_ITEMS:
            raise ProtocolError("malformed sequence")
        values = [decode(v, blobs, depth + 1) for v in items]
        return tuple(values) if tag == "tuple" else values
    if tag == "dict":
        items = spec.get("v")
        if type(items) is not dict or len(items) > MAX_ITEMS:
            raise ProtocolError("malformed dict")
        return {str(k): decode(v, blobs, depth + 1) for k, v in items.items()}
    raise ProtocolError(f"unknown value tag {tag!r}")


def _torch():
    import sys

    return sys.modules.get("torch") or __import__("torch")
