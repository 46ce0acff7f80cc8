"""A bounded, thread-safe queue with an explicit overflow policy."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

OverflowPolicy = Literal["drop_oldest", "drop_newest", "block"]
OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("drop_oldest", "drop_newest", "block")

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """Bounded by item count and, optionally, by bytes (``max_bytes`` with ``size_of(item)``).

    ``drop_oldest`` keeps the freshest data (display), ``drop_newest`` keeps the earliest,
    ``block`` makes the producer wait (nothing lost; the producer's own buffers absorb it).
    """

    def __init__(
        self,
        maxsize: int,
        policy: OverflowPolicy = "drop_oldest",
        max_bytes: int | None = None,
        size_of: Callable[[T], int] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        if policy not in OVERFLOW_POLICIES:
            raise ValueError(f"policy must be one of {OVERFLOW_POLICIES}")
        if (max_bytes is None) != (size_of is None):
            raise ValueError("give max_bytes and size_of together")
        self.maxsize = maxsize
        self.policy = policy
        self.max_bytes = max_bytes
        self._size_of = size_of
        self.dropped = 0
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False

    def _full(self, incoming_bytes: int) -> bool:
        if len(self._items) >= self.maxsize:
            return True
        return (
            self.max_bytes is not None
            and bool(self._items)
            and self._bytes + incoming_bytes > self.max_bytes
        )

    def put(self, item: T) -> bool:
        """Add an item; False if the policy dropped something (this item or older ones)."""
        size = self._size_of(item) if self._size_of is not None else 0
        with self._cond:
            if self._closed:
                return False
            kept = True
            if self._full(size):
                if self.policy == "drop_newest":
                    self.dropped += 1
                    return False
                if self.policy == "drop_oldest":
                    while self._full(size):
                        _, old_size = self._items.popleft()
                        self._bytes -= old_size
                        self.dropped += 1
                    kept = False
                else:
                    while self._full(size) and not self._closed:
                        self._cond.wait(0.1)
                    if self._closed:
                        return False
            self._items.append((item, size))
            self._bytes += size
            self._cond.notify_all()
            return kept

    def get(self, timeout_s: float | None = None) -> T | None:
        """The oldest item, or None after ``timeout_s`` or once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            if not self._items:
                return None
            item, size = self._items.popleft()
            self._bytes -= size
            self._cond.notify_all()
            return item

    def close(self) -> None:
        """No more items will come; waiting consumers wake up."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
