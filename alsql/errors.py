"""The project's error type: bad input, named and explained."""

__all__ = ["AlsqlError"]


class AlsqlError(ValueError):
    """Bad input or an impossible request.

    The message names the input and what was expected; raising it never leaves a
    partial write behind (callers raise before or roll back).
    """
