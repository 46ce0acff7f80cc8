"""A bounded, thread-safe queue with an explicit overflow policy."""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, Literal, TypeVar

OverflowPolicy = Literal["drop_oldest", "drop_newest", "block"]
OVERFLOW_POLICIES: tuple[OverflowPolicy, ...] = ("drop_oldest", "drop_newest", "block")

T = TypeVar("T")


class BoundedQueue(Generic[T]):
    """``drop_oldest`` keeps the freshest data (display), ``drop_newest`` keeps the earliest,
    ``block`` makes the producer wait (nothing lost; the producer's own buffers absorb it)."""

    def __init__(self, maxsize: int, policy: OverflowPolicy = "drop_oldest") -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        if policy not in OVERFLOW_POLICIES:
            raise ValueError(f"policy must be one of {OVERFLOW_POLICIES}")
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T) -> bool:
        """Add an item; False if the policy dropped something (this item or the oldest)."""
        with self._cond:
            if self._closed:
                return False
            kept = True
            if len(self._items) >= self.maxsize:
                if self.policy == "drop_oldest":
                    self._items.popleft()
                    self.dropped += 1
                    kept = False
                elif self.policy == "drop_newest":
                    self.dropped += 1
                    return False
                else:
                    while len(self._items) >= self.maxsize and not self._closed:
                        self._cond.wait(0.1)
                    if self._closed:
                        return False
            self._items.append(item)
            self._cond.notify_all()
            return kept

    def get(self, timeout_s: float | None = None) -> T | None:
        """The oldest item, or None after ``timeout_s`` or once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait(timeout_s)
            if not self._items:
                return None
            item = self._items.popleft()
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

    def __len__(self) -> int:
        return len(self._items)
