"""One rate limiter for every pace the desk keeps: a send's NEWSLETTER_RATE and
NEWSLETTER_RATE_PER_HOUR, and each relay's own `rate` in the pool.

Token buckets shared by the threads that take from them: a bucket holds up to `burst`
tokens and refills at its rate; a message takes one token from every bucket. A send
lets a second's worth go at once; a relay's cap takes burst 1, one message every
1/rate seconds from the first on.
"""

from __future__ import annotations

import threading
from time import monotonic

_NEVER = threading.Event()  # for a wait nobody stops


class RateLimit:
    def __init__(self, per_second: float, per_hour: int = 0, *, burst: float | None = None):
        second = (per_second, max(per_second, 1.0) if burst is None else burst)
        hour = (per_hour / 3600.0, float(per_hour))
        self.buckets = [(rate, size) for rate, size in (second, hour) if rate > 0]
        self.tokens = [size for _, size in self.buckets]
        self.stamp = monotonic()
        self.lock = threading.Lock()

    def wait(self, stop: threading.Event = _NEVER) -> None:
        """Until every bucket has a token (and take one from each), or `stop` is set."""
        while self.buckets and not stop.is_set():
            with self.lock:
                now = monotonic()
                elapsed, self.stamp = now - self.stamp, now
                self.tokens = [
                    min(size, t + rate * elapsed)
                    for (rate, size), t in zip(self.buckets, self.tokens, strict=True)
                ]
                if all(t >= 1 for t in self.tokens):
                    self.tokens = [t - 1 for t in self.tokens]
                    return
                needed = max(
                    (1 - t) / rate for (rate, _), t in zip(self.buckets, self.tokens, strict=True)
                )
            stop.wait(min(needed, 1.0))
