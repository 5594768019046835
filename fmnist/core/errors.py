"""Errors a user can fix. Stages print them as one line, never as a traceback."""


class FmnistError(Exception):
    """Base class: a problem with the user's parameters, data or environment."""


class ConfigError(FmnistError):
    """An invalid value in params.yaml."""


class DataError(FmnistError):
    """Missing, corrupt or unexpected data files."""


class OutputError(FmnistError):
    """An output could not be written (a full disk, a read-only directory); nothing half-written is left."""
