"""The untrusted runner: executes one student's notebook code and answers calls.

Started by :class:`autograder.student.StudentCode` inside the job's sandbox
(:mod:`autograder.sandbox`) as ``python -I runner.py CONFIG``. The student's code runs only
here; this process

1. keeps only the first 64 KiB of what the student prints (``sys.stdout`` / ``sys.stderr``
   are capped writers; the file descriptors 1 and 2 are pipes the grader drains and caps);
2. puts the student build of ``dnnkernels`` first on ``sys.path`` (the sandbox holds no
   other ``dnnkernels``: the reference is not in its file system);
3. imports numpy and torch, then installs the in-process audit hook of ``audit.py`` as a
   second layer (no processes, signals, sockets or ctypes; the first layer is the
   operating system);
4. makes a fresh module the ``__main__`` module (the student build's stubs look up the
   student's functions there) and serves requests read from a pipe:

   - ``load``: run the setup cells (pristine, from the release) and the student's answer
     cells in notebook order, each in its own ``try``; a message when a cell starts and
     one when it ends, after which the next cell waits for the grader's ``next`` (so the
     grader can tell which cell ended the sandbox);
   - ``call``: call a function the cells defined, e.g. ``conv2d_im2col(x, k, b)``;
   - ``record``: the same as ``call``, under torch's recording modes; the reply holds the
     value and a plain record of the torch operations and FLOPs (:func:`record_call`);
   - ``adapter``: run a named adapter for class tasks (``svd_linear``).

Messages travel on two pipes as :mod:`multiprocessing.connection` messages (one JSON header,
then one message per array). Results go back as plain numpy arrays (``protocol.py``); the
trusted grader never unpickles anything and compares in its own process.
"""

import importlib.util
import io
import json
import os
import sys
import traceback
import types

OUTPUT_CAP = 64 * 1024  # characters of student output kept per stream


class CappedText(io.TextIOBase):
    """A text stream that writes the first ``cap`` characters to a file descriptor."""

    def __init__(self, fd: int, cap: int, name: str) -> None:
        self._fd = fd
        self._left = cap
        self._name = name
        self.dropped = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd

    def write(self, text) -> int:
        text = str(text)
        if self._left > 0:
            part = text[: self._left]
            self._left -= len(part)
            try:
                os.write(self._fd, part.encode("utf-8", "replace"))
            except OSError:
                self._left = 0
        else:
            self.dropped += len(text)
        return len(text)

    def flush(self) -> None:
        pass


def _load_by_path(name: str, path: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _error(exc: BaseException, cell_names: dict) -> dict:
    """Type, message (truncated) and location in the student's cells of an exception."""
    try:
        name = type(exc).__name__
    except BaseException:  # noqa: BLE001
        name = "Exception"
    try:
        message = str(exc)
    except BaseException:  # noqa: BLE001
        message = "<the exception's message could not be printed>"
    where = None
    try:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename in cell_names:
                where = f"line {frame.lineno} of cell {cell_names[frame.filename]}"
    except BaseException:  # noqa: BLE001
        pass
    return {"type": str(name)[:80], "message": message[:400], "where": where}


def _strip_magics(source: str) -> str:
    """Comment out IPython magics and shell escapes (``%...``, ``%%...``, ``!...``)."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")):
            line = line[: len(line) - len(stripped)] + "pass  # " + stripped
        lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------------------- recording

#: aten operations whose every call is reported, however many distinct operations there are
KEEP_OPS = ("conv", "mm", "mv", "dot", "matmul", "linear", "fft", "einsum", "exp", "pow", "log")
MAX_NAMES = 200  # distinct names reported (the wire format takes at most 256 per dict)
LEAVING = ("numpy", "tolist", "__array__", "data_ptr", "__dlpack__", "untyped_storage", "storage")


def _python_name(func) -> str:
    if type(func).__name__ in ("OpOverload", "OpOverloadPacket"):  # torch.ops.aten.*
        return str(func)
    qualname = str(getattr(func, "__qualname__", None) or getattr(func, "__name__", "?"))
    head, _, tail = qualname.partition(".")
    if head == "_VariableFunctionsClass":
        return "torch." + tail
    if head in ("TensorBase", "Tensor") and tail:
        return "Tensor." + tail.split(".")[0]
    module = getattr(func, "__module__", None)
    return f"{module}.{qualname}" if module else qualname


def _capped(counts: dict) -> dict:
    if len(counts) <= MAX_NAMES:
        return dict(counts)
    kept = {k: v for k, v in counts.items() if any(w in k for w in KEEP_OPS)}
    for key, value in sorted(counts.items(), key=lambda kv: -kv[1]):
        if len(kept) >= MAX_NAMES:
            break
        kept.setdefault(key, value)
    return kept


def record_call(function, args, kwargs, known=()):
    """``function(*args, **kwargs)`` under torch's own recording modes: (value, record).

    A ``TorchDispatchMode`` sees every aten operation (whatever Python name reached it:
    ``F.conv2d``, ``torch.conv2d``, ``nn.Conv2d`` all end in ``aten.convolution``), a
    ``TorchFunctionMode`` the Python-level torch functions and tensor methods, and
    ``torch.utils.flop_counter.FlopCounterMode`` the FLOPs of the matrix products and
    convolutions. The record is plain data (the grader decides, in its own process):

    - ``ops``: aten operation -> calls; ``elements``: aten operation -> elements of its outputs;
    - ``functions``: Python-level torch function -> calls; ``flops``: FLOPs (FlopCounterMode);
    - ``unknown``: elements of tensors that fed a recorded operation but were neither an
      argument (or in ``known``) nor the output of a recorded operation (values computed
      outside the recording: small constants of the cell are normal, the result is not);
    - ``left``: elements of tensors turned into numpy arrays, lists or raw memory;
    - ``origin``: the result (a tensor, or every tensor of a tuple) is an argument or the
      output of a recorded operation;
    - ``intact``: the recording modes were still in place when the function returned.
    """
    import torch
    from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack
    from torch.utils._python_dispatch import TorchDispatchMode, _get_current_dispatch_mode_stack
    from torch.utils._pytree import tree_leaves
    from torch.utils.flop_counter import FlopCounterMode

    ops: dict = {}
    elements: dict = {}
    functions: dict = {}
    seen: dict = {}  # storage address -> storage (kept alive: no address is reused)
    stats = {"unknown": 0, "left": 0}
    strange: set = set()

    def storage(t):
        try:
            with torch._C.DisableTorchFunction():
                s = torch.Tensor.untyped_storage(t)
                return s.data_ptr(), s
        except Exception:  # noqa: BLE001 - tensors without storage
            return None, None

    def numel(t) -> int:
        with torch._C.DisableTorchFunction():
            return int(torch.Tensor.numel(t))

    for t in [*tree_leaves((args, kwargs)), *known]:
        if isinstance(t, torch.Tensor):
            key, s = storage(t)
            if key is not None:
                seen[key] = s

    class Operations(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, a=(), kw=None):
            kw = kw or {}
            for t in tree_leaves((a, kw)):
                if isinstance(t, torch.Tensor):
                    key, s = storage(t)
                    if key is not None and key not in seen and key not in strange:
                        strange.add(key)
                        stats["unknown"] += numel(t)
            out = func(*a, **kw)
            name = str(func.overloadpacket)
            ops[name] = ops.get(name, 0) + 1
            for t in tree_leaves(out):
                if isinstance(t, torch.Tensor):
                    elements[name] = elements.get(name, 0) + numel(t)
                    key, s = storage(t)
                    if key is not None:
                        seen[key] = s
            return out

    class Functions(TorchFunctionMode):
        def __torch_function__(self, func, types, a=(), kw=None):
            name = _python_name(func)
            functions[name] = functions.get(name, 0) + 1
            if name.rpartition(".")[2] in LEAVING and a and isinstance(a[0], torch.Tensor):
                stats["left"] += numel(a[0])
            return func(*a, **(kw or {}))

    flops = FlopCounterMode(display=False)
    operations, calls = Operations(), Functions()
    with flops:
        with operations:
            with calls:
                value = function(*args, **kwargs)
                intact = bool(_get_current_function_mode_stack()) and (
                    _get_current_function_mode_stack()[-1] is calls
                )
            intact = (
                intact
                and bool(_get_current_dispatch_mode_stack())
                and (_get_current_dispatch_mode_stack()[-1] is operations)
            )
    results = value if isinstance(value, (tuple, list)) else (value,)
    tensors = [t for t in results if isinstance(t, torch.Tensor)]
    origin = bool(tensors) and all(storage(t)[0] in seen for t in tensors)
    record = {
        "ops": _capped(ops),
        "elements": {k: elements.get(k, 0) for k in _capped(ops)},
        "functions": _capped(functions),
        "flops": int(flops.get_total_flops()),
        "unknown": stats["unknown"],
        "left": stats["left"],
        "origin": origin,
        "intact": bool(intact),
    }
    return value, record


# ---------------------------------------------------------------------------- adapters


class MissingName(LookupError):
    """An adapter did not find the student's definition (reported as "Missing")."""


def adapter_svd_linear(namespace, weight, bias, rank, x, backward=True, record=False):
    """Build ``nn.Linear(weight, bias)``, then the student's ``SVDLinear(linear, rank)``.

    Returns a dict: ``y`` (the forward output on ``x``), ``module`` (is it an
    ``nn.Module``), ``params`` (number of scalar parameters), ``full`` (does it keep a
    parameter or buffer the size of the whole weight), ``grad`` (after ``y.sum().backward()``,
    did every parameter get a finite gradient); with ``record``, ``record``: what the forward
    pass did (:func:`record_call`; the layer's tensors count as its inputs).
    """
    import torch

    cls = namespace.get("SVDLinear")
    if cls is None:
        raise MissingName("SVDLinear")
    out_features, in_features = weight.shape
    linear = torch.nn.Linear(in_features, out_features, bias=bias is not None, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    layer = cls(linear, rank)
    if record:
        y, trace = record_call(layer, (x,), {}, known=_layer_tensors(torch, layer))
    else:
        y, trace = layer(x), None
    result = {"y": y, "module": isinstance(layer, torch.nn.Module)}
    if trace is not None:
        result["record"] = trace
    if result["module"]:
        params = list(layer.parameters())
        result["params"] = int(sum(p.numel() for p in params))
        shapes = [tuple(p.shape) for p in params] + [tuple(b.shape) for b in layer.buffers()]
        result["full"] = any(
            s in ((out_features, in_features), (in_features, out_features)) for s in shapes
        )
        if backward and isinstance(y, torch.Tensor) and y.requires_grad:
            y.sum().backward()
            result["grad"] = bool(params) and all(
                p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in params
            )
        else:
            result["grad"] = False
    return result


def _layer_tensors(torch, layer) -> list:
    """The tensors a layer holds before its forward pass: parameters, buffers, attributes."""
    found = []
    modules = list(layer.modules()) if isinstance(layer, torch.nn.Module) else [layer]
    for module in modules:
        try:
            attributes = list(vars(module).values())
        except TypeError:
            attributes = []
        for value in attributes:
            if isinstance(value, dict):
                attributes.extend(list(value.values())[:1000])
            elif isinstance(value, torch.Tensor):
                found.append(value)
    return found


ADAPTERS = {"svd_linear": adapter_svd_linear}


# ---------------------------------------------------------------------------- main loop


def main() -> None:
    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    req_fd, res_fd = config["req_fd"], config["res_fd"]

    # 1. student output: sys.stdout / sys.stderr capped (fds 1 and 2 are the grader's pipes)
    sys.stdout = CappedText(1, OUTPUT_CAP, "<stdout>")
    sys.stderr = CappedText(2, OUTPUT_CAP, "<stderr>")

    protocol = _load_by_path("_dnnk_protocol", config["protocol"])
    audit = _load_by_path("_dnnk_audit", config["audit"])
    requests, results = protocol.pipe_connection(req_fd, res_fd)

    # 2. the student build first
    sys.path[:] = config["sys_path"] + [p for p in sys.path if p]

    # 3. libraries first (torch loads native code), then limits and the audit hook
    import math  # noqa: F401
    import warnings

    import numpy  # noqa: F401
    import torch
    import torch.nn.functional  # noqa: F401
    import torch.utils.data  # noqa: F401

    warnings.simplefilter("ignore")
    # pin the student build: its submodules then load from its own __path__, so that a
    # student's sys.path edits cannot swap in another package
    try:
        import dnnkernels  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken build fails the calls that need it
        pass
    torch.set_num_threads(config.get("threads", 1))
    audit.install(config["allow_write"])

    # 4. a fresh __main__ for the student's cells
    module = types.ModuleType("__main__")
    module.__dict__["__builtins__"] = __builtins__
    sys.modules["__main__"] = module
    namespace = module.__dict__
    cell_names: dict[str, str] = {}

    def reply(header: dict, value=None, has_value: bool = False) -> None:
        blobs: list[bytes] = []
        if has_value:
            try:
                header = dict(header, result=protocol.encode(value, blobs))
            except BaseException as exc:  # noqa: BLE001 - the student's object misbehaved
                blobs = []
                header = dict(header, ok=False, error=_error(exc, cell_names))
                header["error"]["type"] = "BadResult"
        protocol.send(results, header, blobs)

    while True:
        try:
            request, blobs = protocol.receive(requests)
        except (protocol.Closed, protocol.ProtocolError):
            os._exit(0)
        op, rid = request.get("op"), request.get("id")
        if op == "load":
            for index, cell in enumerate(request["cells"]):
                filename = f"<cell {cell['grade_id']}>"
                cell_names[filename] = cell["grade_id"]
                protocol.send(results, {"id": rid, "event": "start", "index": index})
                error = None
                try:
                    code = compile(_strip_magics(cell["source"]), filename, "exec")
                    exec(code, namespace)
                except BaseException as exc:  # noqa: BLE001 - one broken cell breaks only itself
                    error = _error(exc, cell_names)
                protocol.send(results, {"id": rid, "event": "done", "index": index, "error": error})
                # the next cell runs only once the grader has seen this one end (and checked
                # that it did not kill the sandbox): a crash is never blamed on a later cell
                try:
                    go, _ = protocol.receive(requests)
                except (protocol.Closed, protocol.ProtocolError):
                    os._exit(0)
                if go.get("op") != "next":
                    os._exit(0)
            protocol.send(results, {"id": rid, "event": "loaded"})
            continue
        try:
            args = protocol.decode(request["args"], blobs)
            kwargs = protocol.decode(request["kwargs"], blobs)
        except protocol.ProtocolError as exc:
            reply({"id": rid, "ok": False, "error": {"type": "GraderError", "message": str(exc)}})
            continue
        name = request.get("name")
        try:
            if op == "call":
                function = namespace.get(name)
                if not callable(function):
                    reply({"id": rid, "ok": False, "error": {"type": "Missing", "message": name}})
                    continue
                value = function(*args, **kwargs)
            elif op == "record":
                function = namespace.get(name)
                if not callable(function):
                    reply({"id": rid, "ok": False, "error": {"type": "Missing", "message": name}})
                    continue
                value, trace = record_call(function, args, kwargs)
                value = {"value": value, "record": trace}
            elif op == "adapter":
                value = ADAPTERS[name](namespace, *args, **kwargs)
            else:
                reply({"id": rid, "ok": False, "error": {"type": "GraderError", "message": op}})
                continue
        except MissingName as exc:
            missing = {"type": "Missing", "message": str(exc.args[0])}
            reply({"id": rid, "ok": False, "error": missing})
            continue
        except BaseException as exc:  # noqa: BLE001 - SystemExit and friends included
            reply({"id": rid, "ok": False, "error": _error(exc, cell_names)})
            continue
        reply({"id": rid, "ok": True}, value, has_value=True)


if __name__ == "__main__":
    main()
