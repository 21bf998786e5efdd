"""sidecar-thumbs: a PNG thumbnail next to every 3D-printing model (STL, 3MF, STEP, archives...), in SQLite."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
