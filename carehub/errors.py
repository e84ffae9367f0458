"""The root of CareHub's own exceptions, so callers can catch the project's errors in one place."""


class CareHubError(Exception):
    """Base of every error CareHub raises on purpose."""


class ConfigError(CareHubError):
    """A setting or site file is wrong; the message says what to fix."""
