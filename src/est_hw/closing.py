"""``with`` support for the objects that hold a resource until ``close()``."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosedOnExit:
    """``with thing:`` hands ``thing`` to the block and closes it when the block ends,
    on errors too.  The subclass says what closing means (:meth:`close`)."""

    def close(self) -> None:
        """Release what the object holds."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
