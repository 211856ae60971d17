"""The one exception type for user mistakes.

The CLI turns a :class:`MisterpInputError` into its message and exit code 2,
without a traceback; anything else is a bug and keeps its traceback.
"""


class MisterpInputError(ValueError):
    """Bad input: the message names the column or values and the fix."""
