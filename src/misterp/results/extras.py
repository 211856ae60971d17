"""Optional extras degrade to a note: they never take the MRP estimate down.

The raw, weighted and raked comparison columns, the interval notes, the frame's coverage count,
the model check and the report's figures add to an estimate; none of them is the estimate. A
failure in one (data it cannot handle, such as a continuous covariate with thousands of values)
leaves its part empty and says why, and the estimate is still printed.

Example
-------
>>> notes = []
>>> extra("the raked comparison", notes, lambda: 1 / 0, default=float("nan"))
nan
>>> notes
['the raked comparison was left out: ZeroDivisionError (division by zero)']
"""

from __future__ import annotations

from ..errors import MisterpInputError


def extra(what: str, notes: list[str], compute, *args, default=None, **kwargs):
    """``compute(*args, **kwargs)``, or ``default`` with a note in ``notes`` naming ``what`` and why.

    A :class:`MisterpInputError` (a reason written for the user) is quoted as it is; any other
    exception is named by its type and message, so that a bug is reported and not hidden.
    """
    try:
        return compute(*args, **kwargs)
    except MisterpInputError as e:
        notes.append(f"{what} was left out: {e}")
    except Exception as e:  # noqa: BLE001 - an extra never takes the estimate down
        notes.append(f"{what} was left out: {type(e).__name__} ({e})")
    return default
