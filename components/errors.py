"""The project's small exception hierarchy: messages say what was wrong and what was expected."""

from collections.abc import Collection


class PipelineError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(PipelineError):
    """A configuration value is missing, has the wrong type, or is not one of the allowed values."""


class DataError(PipelineError):
    """Input data is missing, unreadable or fails validation."""


def require_one_of(field: str, value: object, allowed: Collection) -> None:
    """Raise a ConfigError that names the field, the value and the valid choices."""
    if value not in allowed:
        raise ConfigError(
            f"{field}={value!r} is not valid; choose one of: {', '.join(map(str, allowed))}"
        )
