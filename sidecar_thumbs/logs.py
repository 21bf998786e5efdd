"""Logging as the person running the daemon wants it: readable lines, or JSON for log collectors.

Two loggers matter: ``sidecar_thumbs`` (run summaries, problems, the daemon's progress) and its child
``sidecar_thumbs.files`` (one event per model: rendered or failed). The per-file "rendered" lines are
INFO on the child, shown only with ``-v``; a failure is a WARNING there, so it is always shown. In
JSON, a per-file event carries ``event``, ``path``, ``reason``, ``transient`` and ``ms`` as fields of
its own, so a log collector needs no parsing of ``message``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

__all__ = ["FILES_LOGGER", "JsonFormatter", "json_line", "log_outcome", "log_problem", "setup_logging"]

FILES_LOGGER = "sidecar_thumbs.files"
# Structured fields a record may carry (passed with ``extra=``); JSON writes the ones present.
FIELDS = ("event", "path", "reason", "transient", "ms", "source", "done", "total", "pending", "ok",
          "failed", "rate_per_s", "eta_s")  # fmt: skip

files_log = logging.getLogger(FILES_LOGGER)


def _timestamp(created: float) -> str:
    local = time.localtime(created)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{int(created % 1 * 1000):03d}{time.strftime('%z', local)}"


def json_line(level: str, logger: str, message: str, created: float | None = None, **fields: Any) -> str:
    """One log line as a JSON object: time, level, logger, message, then ``fields`` (None as null)."""
    out: dict[str, object] = {
        "time": _timestamp(time.time() if created is None else created),
        "level": level,
        "logger": logger,
        "message": message,
    }
    out.update(fields)
    return json.dumps(out, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the structured fields, exception text."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: getattr(record, k) for k in FIELDS if hasattr(record, k)}
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        return json_line(record.levelname.lower(), record.name, record.getMessage(), record.created, **fields)


def setup_logging(level: int, log_format: str = "text", *, per_file: bool = False, log_file: str = "") -> None:
    """Configure the ``sidecar_thumbs`` logger tree to write to stderr (launchd/systemd capture it).

    Args:
        level: the level of run summaries and problems.
        log_format: "text" or "json".
        per_file: also log one line per model rendered (``-v``); failures are logged either way.
        log_file: write to this file instead; it is reopened when newsyslog or logrotate moved it
            away (a launchd log given to the process as its stderr would be written to the rotated
            file until the next restart).

    Raises:
        OSError: ``log_file`` cannot be opened for appending.
    """
    handler: logging.Handler
    if log_file:
        # Its folder too (e.g. ~/Library/Logs/sidecar-thumbs on a fresh Mac account).
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        # Imported here, only with a log file: logging.handlers costs ~10 ms of every command's start-up.
        from logging.handlers import WatchedFileHandler

        handler = WatchedFileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("sidecar_thumbs")
    for old in root.handlers:
        old.close()  # a log file opened by an earlier call (stderr itself stays open)
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # The per-file logger follows -v: INFO (every render) when asked, else failures only; -q (ERROR
    # on the root) silences failures too, -vv (DEBUG) shows everything.
    files_log.setLevel(min(level, logging.INFO) if per_file else max(level, logging.WARNING))


def log_outcome(
    path: str,
    *,
    ok: bool,
    source: str | None = None,
    reason: str | None = None,
    transient: bool = False,
    ms: float | None = None,
    again: bool = False,
) -> None:
    """Log what happened to one model: "rendered" at INFO, "failed" at WARNING (with its reason);
    ``again``: a model already reported failing failed once more (a retry), at INFO (``-v``)."""
    took = None if ms is None else round(ms, 1)
    if ok:
        detail = f" ({source}, {ms:.0f} ms)" if ms is not None else f" ({source})"
        extra = {"event": "rendered", "path": path, "reason": None, "transient": False, "ms": took, "source": source}
        files_log.info("rendered: %s%s", path, detail, extra=extra)
        return
    retry = " (will retry)" if transient else ""
    event = "still_failing" if again else "failed"
    extra = {"event": event, "path": path, "reason": reason, "transient": transient, "ms": took}
    files_log.log(logging.INFO if again else logging.WARNING, "%s: %s: %s%s", event.replace("_", " "), path, reason,
                  retry, extra=extra)  # fmt: skip


def log_problem(path: str, reason: str) -> None:
    """A file or folder that could not be looked at (walk or hash), as a per-file WARNING event."""
    extra = {"event": "problem", "path": path, "reason": reason, "transient": True, "ms": None}
    logging.getLogger("sidecar_thumbs").warning("cannot look at %s: %s", path, reason, extra=extra)
