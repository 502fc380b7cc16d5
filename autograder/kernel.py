"""Sandboxed IPython kernel for ``nbgrader autograde`` (started through a kernelspec).

The grading driver puts a ``python3`` kernelspec whose command is
``python autograder/kernel.py -f {connection_file}`` first on ``JUPYTER_PATH`` of the
``nbgrader autograde`` process, so the notebook's code runs in this kernel. Before the
kernel starts serving it

- removes the script's own folder and every path the sandbox denies from ``sys.path``
  (``PYTHONPATH`` puts the student build ``release/`` first: the notebook never imports
  the reference package);
- imports numpy, torch and the IPython kernel, then applies the limits and the audit hook
  of ``sandbox.py`` (configuration in the ``DNNK_SANDBOX`` environment variable, JSON);
- caps what one cell may print (``output_cap`` characters across stdout and stderr).

The kernel's results never grant kernel points (the hidden checks do); the sandbox is
there so that a submission cannot read the hidden checks or the reference, damage the
grading files, or exhaust the machine.
"""

import importlib.util
import json
import os
import sys


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    config = json.loads(os.environ.pop("DNNK_SANDBOX"))
    pids = os.environ.pop("DNNK_KERNEL_PIDS", None)
    if pids:  # so that the grader can kill a kernel that outlives nbgrader
        with open(os.path.join(pids, f"{os.getpid()}.pid"), "w") as handle:
            handle.write(str(os.getpid()))
    spec = importlib.util.spec_from_file_location("_dnnk_sandbox", os.path.join(here, "sandbox.py"))
    sandbox = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sandbox)

    policy = sandbox.Policy(config["deny_read"], config["allow_read"], config["allow_write"])
    sys.path[:] = [
        p
        for p in sys.path
        if os.path.realpath(p or ".") != here and policy.may_read(os.path.realpath(p or "."))
    ]

    import numpy  # noqa: F401
    import torch
    import torch.nn.functional  # noqa: F401
    import torch.utils.data  # noqa: F401
    from ipykernel.kernelapp import IPKernelApp

    try:  # pin the student build (PYTHONPATH): later sys.path edits cannot swap it
        import dnnkernels  # noqa: F401
    except Exception:  # noqa: BLE001
        pass

    torch.set_num_threads(config.get("threads", 1))
    app = IPKernelApp.instance()
    app.initialize(sys.argv[1:])

    budget = {"left": config.get("output_cap", 200_000), "noted": False}

    def reset(*_args, **_kwargs) -> None:
        budget["left"] = config.get("output_cap", 200_000)
        budget["noted"] = False

    app.shell.events.register("pre_run_cell", reset)
    for stream in (sys.stdout, sys.stderr):
        original = stream.write

        def capped(text, original=original):
            text = str(text)
            if budget["left"] > 0:
                part = text[: budget["left"]]
                budget["left"] -= len(part)
                original(part)
            elif not budget["noted"]:
                budget["noted"] = True
                original("\n[... output truncated by the grader ...]\n")
            return len(text)

        stream.write = capped

    sandbox.set_limits(config["memory_bytes"], config["file_bytes"], config.get("cpu_seconds"))
    sandbox.install(config["deny_read"], config["allow_read"], config["allow_write"])
    app.start()


if __name__ == "__main__":
    main()
