"""Dask as the execution engine: every submission is a task on a worker, in its sandbox.

``python -m autograder.grade`` either connects to an existing cluster
(``--scheduler tcp://HOST:8786``: workers started with ``dask worker ... --nthreads 1`` or by
``dask-jobqueue``), or starts a :class:`distributed.LocalCluster` of ``--workers`` worker
processes on this machine, one thread each (a worker grades one submission at a time).

Each task runs :func:`autograder.job.grade_job` and returns a plain record; the client
(:func:`run`) is the only writer of the gradebook, the grade table and the feedback folder,
and writes each record once, when its task completes. A worker that dies mid-task makes
the scheduler run the task again on another worker (``allowed-failures``: once), with a
fresh sandbox; a task that raises (no sandbox on that worker, a stale checkout) is retried
once; tasks that still fail are returned as failures, never recorded as grades.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

#: how many times a task may lose its worker before it counts as failed
ALLOWED_FAILURES = 1
#: seconds without any worker after which the remaining tasks count as failed
NO_WORKER_SECONDS = float(os.environ.get("DNNK_NO_WORKER_SECONDS", "180"))


@dataclass
class Failure:
    """A submission that could not be graded."""

    student: str
    assignment: str
    reason: str


@contextlib.contextmanager
def connect(scheduler: str | None, workers: int):
    """A ``distributed.Client`` on ``scheduler``, or on a new local cluster of ``workers``."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(
        {
            "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
            "distributed.worker.daemon": False,
            "distributed.admin.system-monitor.gil.enabled": False,
            "logging.distributed": "error",
        }
    ):
        if scheduler:
            client = Client(scheduler, timeout="60s")
            try:
                yield client
            finally:
                client.close()
            return
        cluster = LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_port=0,
            silence_logs=50,
        )
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()


def run(
    client,
    jobs: list,
    task: Callable,
    store: Callable[[dict], None],
    progress: bool = True,
) -> list[Failure]:
    """Run ``task(job)`` for every job on ``client``; ``store`` each result once.

    Returns the failures (tasks that raised twice or lost their worker twice).
    """
    from distributed import as_completed
    from tqdm import tqdm

    by_key = {}
    futures = []
    for job in jobs:
        key = f"grade-{job.student}-{job.assignment}-{uuid.uuid4().hex[:8]}"
        future = client.submit(task, job, key=key, pure=False, retries=1)
        by_key[future.key] = job
        futures.append(future)
    failures: list[Failure] = []
    stored: set[str] = set()
    bar = tqdm(total=len(futures), desc="grading", unit="submission", disable=not progress)
    done = threading.Event()

    def watch_workers() -> None:
        """Cancel what is left if the cluster has had no worker for NO_WORKER_SECONDS."""
        since = None
        while not done.wait(5.0):
            try:
                count = len(client.scheduler_info().get("workers", {}))
            except Exception:  # noqa: BLE001 - the scheduler itself is gone
                count = 0
            if count:
                since = None
                continue
            since = since or time.monotonic()
            if time.monotonic() - since > NO_WORKER_SECONDS:
                for future in futures:
                    if not future.done():
                        future.cancel()
                return

    watcher = threading.Thread(target=watch_workers, daemon=True)
    watcher.start()
    try:
        for future in as_completed(futures):
            job = by_key[future.key]
            if future.key in stored:  # cannot happen with Dask; guarded all the same
                continue
            stored.add(future.key)
            try:
                if future.cancelled():
                    raise RuntimeError(
                        f"no Dask worker was left to grade it for {NO_WORKER_SECONDS:g} s"
                    )
                result = future.result()
            except Exception as error:  # noqa: BLE001 - listed, the run exits non-zero
                reason = f"{type(error).__name__}: {str(error)[:300]}"
                failures.append(Failure(job.student, job.assignment, reason))
                bar.set_postfix_str(f"{job.key}: FAILED")
            else:
                store(result)
                bar.set_postfix_str(f"{job.key}: {result['status']}")
            finally:
                future.release()
            bar.update(1)
    finally:
        done.set()
        bar.close()
    return failures
