"""The command line: options, progress and log output; every command calls the library.

``sidecar_thumbs.cli:cli`` is the console entry point (``sidecar-thumbs``).
"""

from sidecar_thumbs.cli.main import cli, main

__all__ = ["cli", "main"]
