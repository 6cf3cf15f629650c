"""Errors of the functions layer, named after the condition."""
from klog.errors import ConfigError


class FunctionError(Exception):
    """Base of the functions layer's errors."""


class DefinitionError(FunctionError, ConfigError):
    """The function definition names an unknown function, binds nothing, or composes functions
    that cannot be composed (a supplier after the first place, a consumer before the last)."""


class BindingConfigError(FunctionError, ConfigError):
    """A binding property is unknown or has a bad value; the message names the binding, the
    property and the value (and where it came from: code, file or environment)."""


class ValueDecodeError(FunctionError):
    """A record's value does not decode to the type the function takes. Not retryable by
    default: the same bytes fail again."""


class FunctionTimeoutError(FunctionError, TimeoutError):
    """The function took longer than the binding's ``timeout`` for one record."""


class AppStoppedError(FunctionError):
    """The application stopped on a record that failed for good with no DLQ
    (``on-error: stop``); ``__cause__`` is the function's error."""


class NotRunningError(FunctionError):
    """``app.send`` before ``app.start`` (there is no producer yet)."""
