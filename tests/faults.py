"""Fault injection for worker tests: a render job that misbehaves on files named for it.

A seam we own (``LocalPool(job=...)``); everything else (the pool, processes, files) is real.
Top-level functions so spawn workers can import them.
"""

from __future__ import annotations

import ctypes
import os
import time

from sidecar_thumbs.work.jobs import RenderJob, RenderResult, render_job


def faulty_render_job(job: RenderJob) -> RenderResult:
    name = os.path.basename(job.path)
    if name.startswith("hang"):
        time.sleep(3600)
    elif name.startswith("segfault"):
        ctypes.string_at(0)  # a real SIGSEGV in the worker
    elif name.startswith("exit"):
        os._exit(7)
    elif name.startswith("memoryerror"):
        raise MemoryError
    return render_job(job)
