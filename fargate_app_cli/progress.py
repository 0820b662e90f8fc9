"""Live progress of executions on stderr, read from their execution history (GetExecutionHistory).

On a terminal a rich ``Live`` table shows each execution's current state; otherwise (a pipe, CI, a test) every
completed state is one plain line, so logs stay readable and greppable.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table

POLL_SECONDS = 0.25  # the fastest a running execution's history is read again
# At most this many history reads a second over all running executions: each reads the whole history through the
# sandbox front and moto, and eleven executions at 0.25 s took a fifth of the CLI's CPU (the view still refreshes
# every execution about once a second with eight running).
HISTORY_READS_PER_SECOND = 8
TERMINAL_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
History = Callable[[str], list[dict[str, Any]]]
# A poll's "not yet" (the state's Retry checks again): each one is a check worth showing, with what it saw.
NOT_YET_SUFFIXES = ("NotYetActive", "NotYetDeleted", "NotYetReady", "NotYetGone")


def _not_yet(event: dict[str, Any]) -> str | None:
    """What a poll saw when it answered "not yet" (its error message), or None for any other event."""
    details = event.get("lambdaFunctionFailedEventDetails") or event.get("taskFailedEventDetails") or {}
    if not str(details.get("error", "")).endswith(NOT_YET_SUFFIXES):
        return None
    try:
        return str(json.loads(details.get("cause") or "{}").get("errorMessage") or details["error"])
    except (ValueError, AttributeError):
        return str(details["error"])


@dataclass
class Track:
    """One execution as the progress view knows it."""

    app: str
    kind: str
    execution_arn: str
    status: str = "RUNNING"
    current: str | None = None
    completed: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    error: str | None = None
    last_check: str | None = None
    _last_event: int = 0

    @property
    def elapsed(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def apply(self, events: list[dict[str, Any]]) -> list[tuple[str, str]]:
        """Take in new history events; ``(what, detail)`` for each state completed, each poll's "not yet" (what it
        saw) and the end of the execution."""
        happened: list[tuple[str, str]] = []
        for event in sorted(events, key=lambda e: int(e["id"])):
            if int(event["id"]) <= self._last_event:
                continue
            self._last_event = int(event["id"])
            kind = str(event["type"])
            if kind.endswith("StateEntered"):
                self.current = event["stateEnteredEventDetails"]["name"]
                self.last_check = None
            elif (seen := _not_yet(event)) is not None:
                self.last_check = seen
                happened.append(("check", seen))
            elif kind.endswith("StateExited"):
                name = event["stateExitedEventDetails"]["name"]
                self.completed.append(name)
                happened.append(("state", name))
            elif kind in TERMINAL_EVENTS:
                self.status = TERMINAL_EVENTS[kind]
                self.ended = time.monotonic()
                details = event.get("executionFailedEventDetails") or {}
                self.error = details.get("error")
                happened.append(("end", self.status))
        return happened


class ProgressView(Protocol):
    def update(self, track: Track, happened: list[tuple[str, str]]) -> None: ...


class PlainProgress:
    """One line per completed state and per finished execution."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def update(self, track: Track, happened: list[tuple[str, str]]) -> None:
        for what, detail in happened:
            if what == "state":
                line = f"[{track.app}] {track.kind}: {detail} done ({track.elapsed:.1f} s)"
            elif what == "check":
                line = f"[{track.app}] {track.kind}: {track.current} not yet: {detail} ({track.elapsed:.1f} s)"
            else:
                suffix = f" ({track.error})" if track.error else ""
                line = f"[{track.app}] {track.kind} {detail}{suffix} after {track.elapsed:.1f} s"
            print(line, file=self.stream, flush=True)


class LiveProgress:
    """A table redrawn in place: app, kind, current state, states done, status, elapsed time."""

    def __init__(self, live: Live, tracks: list[Track]) -> None:
        self.live = live
        self.tracks = tracks

    def update(self, track: Track, happened: list[tuple[str, str]]) -> None:
        self.live.update(self.table(), refresh=True)

    def table(self) -> Table:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("APP", "KIND", "STATE", "DONE", "STATUS", "ELAPSED"):
            table.add_column(column)
        for track in self.tracks:
            colour = {"SUCCEEDED": "green", "RUNNING": "yellow"}.get(track.status, "red")
            state = track.current or "-"
            if track.status == "RUNNING" and track.last_check:
                state = f"{state}: {track.last_check}"
            if track.status != "RUNNING" and track.error:
                state = f"{state} ({track.error})"
            table.add_row(
                track.app,
                track.kind,
                state,
                str(len(track.completed)),
                f"[{colour}]{track.status}[/{colour}]",
                f"{track.elapsed:.1f}s",
            )
        return table


@contextmanager
def progress_view(tracks: list[Track], stream: TextIO | None = None) -> Iterator[ProgressView]:
    """A live table when ``stream`` (stderr by default) is a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if not stream.isatty():
        yield PlainProgress(stream)
        return
    console = Console(file=stream)
    view = LiveProgress(Live(console=console, auto_refresh=False, redirect_stdout=False), tracks)
    with view.live:
        view.live.update(view.table(), refresh=True)
        yield view


def follow(tracks: list[Track], history: History, view: ProgressView, timeout_s: float) -> None:
    """Poll every running execution's history until all have ended or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while any(t.status == "RUNNING" for t in tracks) and time.monotonic() < deadline:
        for track in tracks:
            if track.status == "RUNNING":
                view.update(track, track.apply(history(track.execution_arn)))
        if running := sum(t.status == "RUNNING" for t in tracks):
            time.sleep(poll_interval(running))


def poll_interval(running: int) -> float:
    """Seconds between two rounds of history reads with ``running`` executions to follow."""
    return max(POLL_SECONDS, running / HISTORY_READS_PER_SECOND)


def observe(track: Track, status: str, current_state: str | None) -> list[tuple[str, str]]:
    """Take in a status answer (``GET /apps/…``) where no history is at hand: a new current state completes the
    previous one."""
    happened: list[tuple[str, str]] = []
    if current_state and current_state != track.current:
        if track.current:
            track.completed.append(track.current)
            happened.append(("state", track.current))
        track.current = current_state
    if status != "RUNNING" and track.status == "RUNNING":
        track.status, track.ended = status, time.monotonic()
        happened.append(("end", status))
    return happened
