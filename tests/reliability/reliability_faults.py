"""Fault-injecting render jobs for worker tests (top-level so spawn workers can import them)."""

from __future__ import annotations

import ctypes
import os
import time

from sidecar_thumbs.jobs import RenderJob, RenderResult, failure, render_job


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
