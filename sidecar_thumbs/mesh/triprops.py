"""Per-triangle property attributes of a 3MF model part, as the scanners report them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = ["TriangleProps"]


@dataclass(frozen=True, eq=False)
class TriangleProps:
    """``props`` int32 (T, 4): ``pid`` (or 3MF 0.93 ``materialid``), ``p1``, ``p2``, ``p3`` per triangle
    of the part, -1 where absent; ``paint`` maps a triangle index to its slicer paint string."""

    props: np.ndarray
    paint: dict[int, str]

    @classmethod
    def from_arrays(cls, data: bytes, props: np.ndarray, paints: np.ndarray) -> TriangleProps:
        """From the numba scanner's arrays (``paints``: triangle, value start, value end)."""
        paint = {int(t): data[s:e].decode("ascii", "replace") for t, s, e in paints.tolist()}
        return cls(props, paint)

    @cached_property
    def any_pid(self) -> bool:
        """True when some triangle names a property group."""
        return len(self.props) > 0 and int(self.props[:, 0].max()) >= 0

    @property
    def any(self) -> bool:
        """True when some triangle names a property group or carries paint."""
        return bool(self.paint) or self.any_pid
