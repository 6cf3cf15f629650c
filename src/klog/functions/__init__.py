"""Functions wired to topics: Spring Cloud Stream's functional model in Python.

    from klog.functions import App, Message
    app = App("message-service")

    @app.function
    def email(event: dict) -> dict: ...

    running = app.start("./data", definition="email|sms",
                        bindings={"emailsms-in-0": {"destination": "account-created"},
                                  "emailsms-out-0": {"destination": "communication-sent"}})
    running.stop()

Modules: app (App, Running), registry (declared functions), composition (definition, pipelines),
bindings (properties and their sources), codec (values by type hints), runner (poll loop,
lanes, sending, commits), tracking (commit points), retry (back-off, DLQ), metrics.
"""
from klog.functions.app import App, Running
from klog.functions.errors import (
    AppStoppedError, BindingConfigError, DefinitionError, FunctionError, FunctionTimeoutError,
    NotRunningError, ValueDecodeError,
)
from klog.functions.message import Message

__all__ = ["App", "Running", "Message", "FunctionError", "DefinitionError", "BindingConfigError",
           "ValueDecodeError", "FunctionTimeoutError", "AppStoppedError", "NotRunningError"]
