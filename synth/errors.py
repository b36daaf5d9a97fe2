"""The one exception type that reaches the user as a single line."""


class SynthError(Exception):
    """A user-facing error: bad input, missing file, refused operation.

    The CLI prints ``error: <message>`` on one line and exits non-zero; no
    traceback. Raise it only for things the user can fix; bugs stay exceptions.
    """
