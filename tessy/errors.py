"""Errors a user can act on. The CLI prints one of them as one line and exits 1; a Prefect flow run
fails with its message. Anything else is a bug and keeps its traceback (`tessy --debug`)."""


class TessyError(Exception):
    """An error whose message tells the user what to do."""


class ConfigError(TessyError, ValueError):
    """A pipeline config that does not parse or validate; the message names each bad field."""


class ConfigNotReady(TessyError):
    """A config names storage, sources, models or servers this machine does not have."""


class StageNotReady(TessyError):
    """A stage ran before what it reads exists (synthesis before predictors, QA before traces...)."""


class ReleaseBlocked(TessyError):
    """The release candidate failed its expectation suite, or has no rows; nothing was released."""


class ReleaseTampered(TessyError):
    """A release's files no longer match its recorded content hash."""


class ReleaseNameError(TessyError, ValueError):
    """A release name that is not valid, is taken (releases are immutable), or names no release."""
