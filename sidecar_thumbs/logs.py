"""Logging as the person running the daemon wants it: readable lines, or JSON for log collectors."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time

from sidecar_thumbs.errors import ConfigError

__all__ = ["JsonFormatter", "setup_logging"]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (+ exception text)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs):03d}"
            + time.strftime("%z", time.localtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: int, log_format: str = "text", log_file: str | os.PathLike[str] | None = None) -> None:
    """Configure the ``sidecar_thumbs`` logger tree to write to stderr (launchd/systemd capture it), or to
    ``log_file``: a ``WatchedFileHandler`` notices when log rotation (newsyslog, logrotate) moved the file
    and opens a new one, so no signal or restart is needed."""
    handler: logging.Handler
    if log_file:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
            handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot open log file {log_file}: {exc.strerror or exc} (SIDECAR_THUMBS_LOG_FILE)"
            ) from exc
    else:
        handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger("sidecar_thumbs")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
