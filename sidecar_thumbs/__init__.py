"""sidecar-thumbs: a PNG thumbnail next to every STL and 3MF model, recorded in SQLite."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
