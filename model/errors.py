import numpy as np


class UserInputError(ValueError):
    """A mistake in what the user gave us (files, flags, theme file); shown as one line, no traceback."""


def whole_number(x) -> bool:
    """x is an int (Python's or numpy's), and not a bool, which Python counts as one."""
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)
