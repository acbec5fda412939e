"""The one retry loop of manystore: exponential backoff with jitter on :class:`RetryableError`."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from .errors import RetryableError
from .types import RetryConfig

__all__ = ["backoff_delay", "call_with_retry"]

T = TypeVar("T")
logger = logging.getLogger(__name__)


def backoff_delay(config: RetryConfig, attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based): base backoff plus equal jitter."""
    base = config.delay * (config.backoff_multiplier ** (attempt - 1))
    return base + random.uniform(0, base)


def call_with_retry(
    fn: Callable[[], T], config: RetryConfig | None, what: str, first_error: RetryableError | None = None
) -> T:
    """Run ``fn``; on :class:`RetryableError` wait and try again, up to ``config.attempts`` in all.

    Any other exception propagates at once. The last :class:`RetryableError` is re-raised
    with the attempt count added to its message. ``first_error`` is the failure of a first
    attempt the caller already made itself (hot paths call the provider directly once).
    """
    config = config or RetryConfig()
    attempt = 1
    pending = first_error
    while True:
        try:
            if pending is not None:
                exc, pending = pending, None
                raise exc
            return fn()
        except RetryableError as exc:
            if attempt >= config.attempts:
                if config.attempts > 1:
                    exc.args = (f"{exc.args[0] if exc.args else exc} (gave up after {attempt} attempts)",)
                raise
            wait = backoff_delay(config, attempt)
            logger.debug("%s: %s; retry %d/%d in %.2fs", what, exc, attempt, config.attempts - 1, wait)
            time.sleep(wait)
            attempt += 1
