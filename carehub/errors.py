"""The root of CareHub's own exceptions, so callers can catch the project's errors in one place."""


class CareHubError(Exception):
    """Base of every error CareHub raises on purpose."""


class ConfigError(CareHubError):
    """A setting or site file is wrong; the message says what to fix."""


class NotFoundError(CareHubError):
    """No such thing (an alarm, a resident, ...); the web app answers 404."""


class ConflictError(CareHubError):
    """The thing is not in a state that allows the change; the web app answers 409."""
