"""Progress while services start: live spinners on a terminal, periodic lines in CI logs."""

from __future__ import annotations

import time

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class WaitDisplay:
    """Shows each service as waiting / ready / failed."""

    def __init__(self, console: Console, titles: list[str], *, log_every: float = 5.0) -> None:
        self.console = console
        self.live = console.is_terminal
        self.log_every = log_every
        self._last_log: dict[str, float] = {}
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        )
        self._tasks: dict[str, int] = {}
        self._titles = titles

    def __enter__(self) -> WaitDisplay:
        if self.live:
            self._progress.start()
            for title in self._titles:
                self._tasks[title] = self._progress.add_task(f"waiting for {title}", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self._progress.stop()

    def waiting(self, title: str, elapsed: float, last_error: str) -> None:
        if self.live:
            self._progress.update(self._tasks[title], description=f"waiting for {title} ({last_error[:60]})")
            return
        now = time.monotonic()
        if now - self._last_log.get(title, 0.0) >= self.log_every:
            self._last_log[title] = now
            self.console.print(f"  … waiting for {title}: {elapsed:.0f}s (last probe: {last_error[:100]})")

    def ready(self, title: str, elapsed: float, detail: str) -> None:
        message = f"[green]✓[/] {title} serves ({detail}) after {elapsed:.1f}s"
        if self.live:
            self._progress.update(self._tasks[title], description=message, total=1, completed=1)
        else:
            self.console.print(message)

    def failed(self, title: str, reason: str) -> None:
        message = f"[red]✗[/] {title}: {reason}"
        if self.live:
            self._progress.update(self._tasks[title], description=message, total=1, completed=0)
        else:
            self.console.print(message)
