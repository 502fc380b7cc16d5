"""The notebook's IPython kernel, as it starts inside the job's sandbox.

Started by :class:`autograder.execute.SandboxedKernelManager` as
``python -I kernel.py -f CONNECTION_FILE`` inside the sandbox (:mod:`autograder.sandbox`);
its ZMQ sockets are Unix sockets in the sandbox's ``/run/dnnk`` folder, which the grader
reaches from outside. Before the kernel serves the first cell it

- puts the student build of ``dnnkernels`` first on ``sys.path`` (the reference package is
  not in the sandbox's file system at all);
- imports numpy, torch and the IPython kernel, binds its sockets, then installs the audit
  hook of ``audit.py`` as a second layer (configuration in ``DNNK_KERNEL``, JSON);
- caps what one cell may print (``output_chars`` characters across stdout and stderr).

The kernel's results never grant kernel points (the hidden checks do); the notebook is run
so that instructors see its outputs (plots, printed answers) when they grade by hand.
"""

import importlib.util
import json
import os
import sys


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    config = json.loads(os.environ.pop("DNNK_KERNEL"))
    spec = importlib.util.spec_from_file_location("_dnnk_audit", os.path.join(here, "audit.py"))
    audit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(audit)
    sys.path[:] = config["sys_path"] + [p for p in sys.path if p and p != here]

    import numpy  # noqa: F401
    import torch
    import torch.nn.functional  # noqa: F401
    import torch.utils.data  # noqa: F401
    from ipykernel.kernelapp import IPKernelApp

    try:  # pin the student build: later sys.path edits cannot swap it
        import dnnkernels  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken build fails the cells that need it
        pass

    torch.set_num_threads(config.get("threads", 1))
    app = IPKernelApp.instance()
    app.initialize(sys.argv[1:])

    cap = int(config.get("output_chars", 200_000))
    budget = {"left": cap, "noted": False}

    def reset(*_args, **_kwargs) -> None:
        budget["left"] = cap
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

    audit.install(config["allow_write"])
    app.start()


if __name__ == "__main__":
    main()
