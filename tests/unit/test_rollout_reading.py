"""Reading a rollout from API objects (fargate_app.kube.rollout is pure): why a pod cannot run, in the cluster's own
words, from the container's waiting state, the scheduler's latest event or the PodScheduled condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from fargate_app.kube.rollout import parse_time, pending_since, pod_problem

START = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def pod(name: str = "web-1", node: str | None = None, phase: str = "Pending", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "creationTimestamp": "2026-12-01T03:00:05Z"},
        "spec": {"nodeName": node} if node else {},
        "status": {"phase": phase, **status},
    }


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    state = {"reason": reason, **({"message": message} if message else {})}
    return {"containerStatuses": [{"name": "c", "state": {"waiting": state}}]}


def scheduling_event(pod_name: str, message: str, at: datetime, reason: str = "FailedScheduling") -> dict[str, Any]:
    return {
        "involvedObject": {"kind": "Pod", "name": pod_name},
        "reason": reason,
        "message": message,
        "lastTimestamp": at.isoformat().replace("+00:00", "Z"),
    }


class TestPodProblem:
    @pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"])
    def test_an_image_pull_failure_is_told_with_the_kubelets_message(self, reason: str) -> None:
        stuck = pod(node="fargate-ip-10-0-1-5", **waiting(reason, "manifest unknown"))

        assert pod_problem(stuck, []) == f"{reason}: manifest unknown"

    def test_an_image_pull_failure_without_a_message_still_says_what(self) -> None:
        assert pod_problem(pod(**waiting("ErrImagePull")), []) == "ErrImagePull: the image cannot be pulled"

    def test_waiting_for_another_reason_is_no_problem_yet(self) -> None:
        assert pod_problem(pod(node="fargate-ip-1", **waiting("ContainerCreating")), []) is None

    def test_an_unscheduled_pod_tells_the_schedulers_latest_event(self) -> None:
        events = [
            scheduling_event("web-1", "0/0 nodes are available (older)", START),
            scheduling_event("web-1", "0/0 nodes are available (latest)", START + timedelta(seconds=30)),
            scheduling_event("web-1", "0/0 nodes are available (middle)", START + timedelta(seconds=10)),
            scheduling_event("web-2", "another pod's", START + timedelta(minutes=5)),
            scheduling_event("web-1", "pulled", START + timedelta(minutes=5), reason="Pulled"),
        ]

        assert pod_problem(pod(), events) == "FailedScheduling: 0/0 nodes are available (latest)"

    def test_an_event_with_only_an_event_time_counts_by_it(self) -> None:
        older = scheduling_event("web-1", "older", START)
        newer = {
            **scheduling_event("web-1", "newer", START),
            "lastTimestamp": None,
            "eventTime": "2026-12-01T04:00:00Z",
        }

        assert pod_problem(pod(), [newer, older]) == "FailedScheduling: newer"

    def test_without_an_event_the_pod_scheduled_condition_tells(self) -> None:
        conditions = [
            {"type": "Initialized", "status": "True"},
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "no Fargate profile"},
        ]

        assert pod_problem(pod(conditions=conditions), []) == "FailedScheduling: no Fargate profile"

    def test_a_pod_scheduled_condition_for_another_reason_is_no_problem(self) -> None:
        conditions = [{"type": "PodScheduled", "status": "False", "reason": "SchedulerError", "message": "x"}]

        assert pod_problem(pod(conditions=conditions), []) is None

    def test_a_bound_or_running_pod_has_no_scheduling_problem(self) -> None:
        events = [scheduling_event("web-1", "stale", START)]

        assert pod_problem(pod(node="fargate-ip-10-0-1-5"), events) is None
        assert pod_problem(pod(phase="Running"), events) is None


class TestTimes:
    def test_kubernetes_timestamps_are_utc(self) -> None:
        assert parse_time("2026-12-01T03:00:05Z") == START + timedelta(seconds=5)
        assert parse_time("2026-12-01T03:00:05") == START + timedelta(seconds=5)

    def test_an_offset_is_kept_and_a_naive_datetime_is_read_as_utc(self) -> None:
        offset = timezone(timedelta(hours=2))
        assert parse_time("2026-12-01T05:00:00+02:00") == datetime(2026, 12, 1, 5, tzinfo=offset)
        assert parse_time(datetime(2026, 12, 1, 3)) == START
        assert parse_time(START) is not None and parse_time(START).tzinfo is UTC  # type: ignore[union-attr]

    @pytest.mark.parametrize("missing", [None, ""])
    def test_no_timestamp_is_none(self, missing: Any) -> None:
        assert parse_time(missing) is None

    def test_a_pods_grace_counts_from_its_creation_never_before_the_rollout(self) -> None:
        created = START + timedelta(seconds=5)
        assert pending_since(pod(), START) == created
        assert pending_since(pod(), START + timedelta(minutes=1)) == START + timedelta(minutes=1)
        assert pending_since(pod(), None) == created
        assert pending_since({"metadata": {}}, None) is None
