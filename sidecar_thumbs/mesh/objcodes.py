"""Status codes of the OBJ scanners (numba kernel and Python twin), and what they mean."""

from __future__ import annotations

OK = 0
ERR_NUMBER = 1
ERR_SHORT_VERTEX = 2
ERR_INDEX = 3
ERR_RANGE = 4
ERR_LIMIT = 5

MESSAGES = {
    ERR_NUMBER: "vertex coordinate is not a number",
    ERR_SHORT_VERTEX: "vertex has fewer than 3 coordinates",
    ERR_INDEX: "face vertex index is not a valid index",
}
