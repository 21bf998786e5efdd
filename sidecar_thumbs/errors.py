"""One family of errors, all under :class:`SidecarThumbsError`. Each carries a one-line message a user
can act on and an exit code.

Two kinds matter to the pipeline:

* :class:`ModelError` — *this file* cannot be thumbnailed. It becomes a failed row and a warning
  line, never the end of the run. ``transient`` says whether trying again later may help (file busy,
  vanished mid-read) or not (bad file: retried only once the file changes).
* everything else (:class:`RunError` and subclasses) — the run itself cannot go on (configuration,
  database, lock); the CLI exits 1.
"""

from __future__ import annotations

# Exit codes (ARCHITECTURE.md): 0 all good, 1 the run failed, 2 usage error,
# 3 the run finished but some files failed or verify found problems.
EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_USAGE = 2
EXIT_PROBLEMS = 3


MAX_MESSAGE = 300


class SidecarThumbsError(Exception):
    """sidecar-thumbs failed"""

    exit_code = EXIT_RUN_FAILED

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (type(self).__doc__ or type(self).__name__).strip())

    @property
    def message(self) -> str:
        # Always one short line: reasons end up in log lines and database cells, and a library's
        # message may quote raw bytes of the file (zipfile quotes a whole local header).
        text = " ".join(str(self).split())
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


# The base's first name; code written against it (and other branches of this project) keeps working.
SidecarError = SidecarThumbsError


class ModelError(SidecarThumbsError):
    """the model file cannot be thumbnailed"""

    exit_code = EXIT_PROBLEMS
    transient = False


class BadModelError(ModelError):
    """the model file is not valid (STL, 3MF, OBJ, PLY or AMF)"""


class NoGeometryError(BadModelError):
    """the model has no triangles to draw"""


class EmptyBuildError(NoGeometryError):
    """the 3MF's build is empty: it places no object"""


class LimitExceededError(BadModelError):
    """the model exceeds a configured cap"""


class MissingExtraError(ModelError):
    """reading this format needs an optional extra that is not installed"""

    # Not transient (no back-off retries), not a bad file either: the row waits until the extra can be
    # imported, then a scan or rescan makes it pending again (StateDB.requeue_missing_extras).

    def __init__(self, extra: str) -> None:
        self.extra = extra
        super().__init__(missing_extra_reason(extra))


def missing_extra_reason(extra: str) -> str:
    """The recorded reason, also what the requeue query looks for: ``needs the [step] extra``."""
    return f"needs the [{extra}] extra (pip install 'sidecar-thumbs[{extra}]')"


class TransientModelError(ModelError):
    """the model file could not be read right now (busy or vanished); will retry"""

    transient = True


class RunError(SidecarThumbsError):
    """the run cannot continue"""


class ConfigError(RunError):
    """invalid configuration"""


class UnknownSettingError(ConfigError):
    """no such setting"""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        super().__init__(f"unknown setting {name!r}; known: {', '.join(sorted(known))}")


class DatabaseError(RunError):
    """the state database cannot be used"""


class DatabaseLockedError(DatabaseError):
    """the state database stayed locked by another process"""


class LockedError(RunError):
    """another sidecar-thumbs daemon already holds the lock on this database"""


class RootOfflineError(RunError):
    """a library root is offline (absent, unmounted, unreadable or suddenly empty); nothing was marked missing"""
