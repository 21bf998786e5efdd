"""Fault-injecting render jobs for worker tests (top-level so spawn workers can import them)."""

from __future__ import annotations

import ctypes
import os
import signal
import time

from sidecar_thumbs.work.jobs import RenderJob, RenderResult, failure, render_job


def faulty_job(job: RenderJob) -> RenderResult:
    """Misbehaves according to the file name's first word; renders normally otherwise."""
    name = os.path.basename(job.path)
    if name.startswith("hang"):
        time.sleep(3600)
    elif name.startswith("segfault"):
        ctypes.string_at(0)  # a real SIGSEGV
    elif name.startswith("exit"):
        os._exit(3)
    elif name.startswith("memoryerror"):
        raise MemoryError
    elif name.startswith("noreturn"):
        render_job(job)  # does the work, then never hands the result back
        while True:
            time.sleep(3600)
    elif name.startswith("pid"):
        time.sleep(0.3)  # long enough that every worker takes some of these
        return failure(job.path, f"pid {os.getpid()}")
    return render_job(job)


def stopping_job(job: RenderJob) -> RenderResult:
    """The first time it sees a file named ``sigstop*``, the worker stops itself (SIGSTOP: a laptop
    asleep, a read stuck on a share); afterwards it renders normally. A marker beside the model says
    it happened (the worker is killed by the timeout, so it cannot remember)."""
    marker = job.path + ".stopped"
    if os.path.basename(job.path).startswith("sigstop") and not os.path.exists(marker):
        with open(marker, "w"):
            pass
        os.kill(os.getpid(), signal.SIGSTOP)
    return render_job(job)
