class UserInputError(ValueError):
    """A mistake in what the user gave us (files, flags, theme file); shown as one line, no traceback."""
