"""sidecar-thumbs: a PNG thumbnail next to every 3D-printing model (STL, 3MF, STEP, archives...), in SQLite.

Use it from Python::

    import sidecar_thumbs

    settings = sidecar_thumbs.load_settings(database="/tmp/thumbs.sqlite3", workers=2)
    summary = sidecar_thumbs.scan(["/Volumes/3D-Files/3D-Models"], settings)
    print(summary.rendered, summary.failed, summary.failures[:3])

Every error raised is a :class:`SidecarThumbsError`. Importing the package is cheap: the renderer
(numpy, numba) loads when something is rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sidecar_thumbs.api import clean, load_settings, render_file, scan, verify, watch
from sidecar_thumbs.errors import (
    ConfigError,
    DatabaseError,
    LockedError,
    ModelError,
    RootOfflineError,
    SidecarThumbsError,
    UnknownSettingError,
)
from sidecar_thumbs.settings.fields import Settings

if TYPE_CHECKING:
    from sidecar_thumbs.reports.clean import CleanReport
    from sidecar_thumbs.reports.verify import VerifyReport
    from sidecar_thumbs.work.scan import ScanSummary

__version__ = "0.1.0"
__all__ = [
    "CleanReport",
    "ConfigError",
    "DatabaseError",
    "LockedError",
    "ModelError",
    "RootOfflineError",
    "ScanSummary",
    "Settings",
    "SidecarThumbsError",
    "UnknownSettingError",
    "VerifyReport",
    "__version__",
    "clean",
    "load_settings",
    "render_file",
    "scan",
    "verify",
    "watch",
]

# The report classes live beside modules that import numpy; load them only when asked for (PEP 562).
_LAZY = {
    "CleanReport": "sidecar_thumbs.reports.clean",
    "ScanSummary": "sidecar_thumbs.work.scan",
    "VerifyReport": "sidecar_thumbs.reports.verify",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sidecar_thumbs' has no attribute {name!r}")
