"""Retries with back-off and the dead-letter topic (Spring Cloud Stream's Kafka binder rules).

Attempt n (1-based) that fails waits ``min(initial * multiplier ** (n - 1), max)`` ms before
attempt n + 1, up to ``max-attempts``; an exception is retried unless ``retryable-exceptions``
says otherwise for its class or a base class (by class, qualified name or bare name), else
``default-retryable``. Undecodable values are not retried by default. After the last attempt the
record goes to the DLQ (``enable-dlq``), or the app logs it and skips it or stops
(``on-error``).

DLQ records keep the original key, value and headers and add ``x-original-topic``,
``x-original-partition``, ``x-original-offset``, ``x-original-timestamp`` (decimal text),
``x-exception-fqcn``, ``x-exception-message`` and ``x-exception-stacktrace`` (UTF-8). The
partition is left to the producer's partitioner (by key), so the DLQ may have any number of
partitions.
"""
import traceback

from klog.functions.errors import ValueDecodeError

STACK_LIMIT = 16 * 1024


class RetryPolicy:
    def __init__(self, cfg):
        self.max_attempts = cfg.max_attempts
        self.initial = cfg.back_off_initial_interval
        self.multiplier = cfg.back_off_multiplier
        self.max_interval = cfg.back_off_max_interval
        self.default_retryable = cfg.default_retryable
        self.rules = dict(cfg.retryable_exceptions or {})
        self.rules.setdefault(ValueDecodeError, False)

    def retryable(self, exc):
        for cls in type(exc).__mro__:
            for key in (cls, f"{cls.__module__}.{cls.__qualname__}", cls.__qualname__):
                if key in self.rules:
                    return self.rules[key]
        return self.default_retryable

    def backoff_ms(self, attempt):
        """The wait after failed attempt ``attempt`` (1-based)."""
        return min(self.initial * self.multiplier ** (attempt - 1), self.max_interval)

    def should_retry(self, exc, attempts):
        return attempts < self.max_attempts and self.retryable(exc)


def dlq_name(cfg):
    return cfg.dlq_name or f"error.{cfg.destination}.{cfg.group}"


def dlq_headers(rec, exc):
    cls = type(exc)
    stack = "".join(traceback.format_exception(cls, exc, exc.__traceback__))
    return list(rec.headers or ()) + [
        ("x-original-topic", rec.topic.encode()),
        ("x-original-partition", str(rec.partition).encode()),
        ("x-original-offset", str(rec.offset).encode()),
        ("x-original-timestamp", str(rec.timestamp).encode()),
        ("x-exception-fqcn", f"{cls.__module__}.{cls.__qualname__}".encode()),
        ("x-exception-message", str(exc).encode("utf-8", "replace")),
        ("x-exception-stacktrace", stack.encode("utf-8", "replace")[-STACK_LIMIT:]),
    ]
