"""The one exception type textcls raises for problems a user can fix."""


class TextclsError(Exception):
    """A problem with the user's input, data or run folder; the message says how to fix it."""


class DataError(TextclsError, ValueError):
    """A data source or one of its rows is unusable; the message names file, row and field."""


class RunFolderError(TextclsError):
    """A run folder is missing, incomplete or written by an unknown version."""
