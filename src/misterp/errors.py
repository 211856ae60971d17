"""The one exception type for user mistakes, and the one warning class.

The CLI turns a :class:`MisterpInputError` into its message and exit code 2,
without a traceback; anything else is a bug and keeps its traceback. A
:class:`MisterpWarning` says that a fit needs the user's attention (an
optimizer that did not converge, a singular fit, failed refits, a sampler
diagnostic); every fit lists the same messages in ``problems()``.
"""


class MisterpInputError(ValueError):
    """Bad input: the message names the column or values and the fix."""


class MisterpWarning(UserWarning):
    """A fit to look at before trusting it: the message says why and what to do."""
