"""The exception types textcls raises for problems a user can fix; the CLI turns them into exit 2."""


class TextclsError(Exception):
    """A problem with the user's input, data or run folder; the message says how to fix it."""


class ConfigError(TextclsError, ValueError):
    """A setting is out of range or unknown; the message names the field, what was expected and the fix."""


class DataError(TextclsError, ValueError):
    """A data source or one of its rows is unusable; the message names file, row and field."""


class RunFolderError(TextclsError):
    """A run folder is missing, incomplete or written by an unknown version."""


class UnknownOptionError(ConfigError, TypeError):
    """An option name that no config has, like an unexpected keyword argument; the message lists the known ones."""


class StorageError(TextclsError, OSError):
    """A file could not be written (disk full, read-only, a folder in the way) or read; the message
    names the path, the cause and the fix. `errno` says which failure it was."""

    def __str__(self) -> str:
        return str(self.strerror)
