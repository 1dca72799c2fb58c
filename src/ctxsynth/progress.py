"""Progress reporting hook: library code reports, only the CLI draws (rich progress bars)."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, description: str, total: int) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def add_total(self, n: int) -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    """The default: report nothing."""

    def start(self, description: str, total: int) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def add_total(self, n: int) -> None:
        pass

    def finish(self) -> None:
        pass
