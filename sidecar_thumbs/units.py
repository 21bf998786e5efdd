"""How durations and rates read in logs, status and summaries (``1h02m``, ``26.0 renders/s``).

Plain functions with no imports of the package: the daemon, the status report and the command line's
progress display all use them, so they sit below every layer.
"""

from __future__ import annotations

__all__ = ["format_duration", "format_rate"]


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def format_rate(per_s: float, unit: str = "renders") -> str:
    """``26.0 renders/s``, or ``12 s per render`` below one a second; "" when nothing finished."""
    if per_s <= 0:
        return ""
    if per_s >= 1:
        return f"{per_s:.1f} {unit}/s"
    return f"{1 / per_s:.0f} s per {unit.rstrip('s')}"
