"""The project's small exception hierarchy: messages say what was wrong and what was expected."""


class PipelineError(Exception):
    """Base class for errors a user can act on."""


class ConfigError(PipelineError):
    """A configuration value is missing, has the wrong type, or is not one of the allowed values."""


class DataError(PipelineError):
    """Input data is missing, unreadable or fails validation."""
