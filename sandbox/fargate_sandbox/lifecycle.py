"""``with part:`` for the sandbox's long-lived parts: entering starts the part, leaving stops it, whatever happened."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import ExitStack
from typing import Self


class HoldsStack:
    """What a part started is entered in ``self._stack`` (None while stopped), so stopping undoes it in reverse."""

    _stack: ExitStack | None = None

    def _close_stack(self) -> bool:
        """Undo what was started, once; False when there was nothing to undo."""
        stack, self._stack = self._stack, None
        if stack is None:
            return False
        stack.close()
        return True


class StartStop(HoldsStack, ABC):
    """A part with ``start()`` (returning the started part) is a context manager; ``stop()`` is idempotent."""

    @abstractmethod
    def start(self) -> Self: ...

    def stop(self) -> None:
        self._close_stack()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
