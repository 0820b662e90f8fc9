"""The CLI's progress view follows running executions through their histories, at a bounded rate of reads."""

from __future__ import annotations

from typing import Any

import pytest

from fargate_app_cli import progress
from fargate_app_cli.progress import Track, follow


class Recorded:
    """A progress view that keeps what it was told."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, list[tuple[str, str]]]] = []

    def update(self, track: Track, happened: list[tuple[str, str]]) -> None:
        self.updates.append((track.app, happened))


def history_ending_after(reads: int) -> tuple[progress.History, list[str]]:
    """Histories that show one state entered, then the execution's end from the ``reads``-th read of each on."""
    read: list[str] = []

    def history(arn: str) -> list[dict[str, Any]]:
        read.append(arn)
        events: list[dict[str, Any]] = [
            {"id": 1, "type": "ExecutionStarted"},
            {"id": 2, "type": "TaskStateEntered", "stateEnteredEventDetails": {"name": "ApplyApp"}},
        ]
        if read.count(arn) >= reads:
            events.append({"id": 3, "type": "ExecutionSucceeded"})
        return events

    return history, read


@pytest.mark.parametrize(("running", "pause"), [(1, 0.25), (2, 0.25), (8, 1.0), (16, 2.0)])
def test_rounds_of_history_reads_slow_down_with_the_executions_followed(
    monkeypatch: pytest.MonkeyPatch, running: int, pause: float
) -> None:
    # Given `running` executions that each end at their third history read
    pauses: list[float] = []
    monkeypatch.setattr(progress.time, "sleep", pauses.append)
    tracks = [Track(app=f"app-{n}", kind="provision", execution_arn=f"arn-{n}") for n in range(running)]
    history, read = history_ending_after(3)

    # When the view follows them
    view = Recorded()
    follow(tracks, history, view, timeout_s=60)

    # Then every execution's history was read three times, the rounds paused at most HISTORY_READS_PER_SECOND
    # reads a second apart (and no faster than POLL_SECONDS), and every execution ended SUCCEEDED in the view
    assert sorted(read) == sorted(f"arn-{n}" for n in range(running) for _ in range(3))
    assert pauses == [pause, pause]
    assert all(t.status == "SUCCEEDED" and t.current == "ApplyApp" for t in tracks)
    assert [happened for _, happened in view.updates][-running:] == [[("end", "SUCCEEDED")]] * running
