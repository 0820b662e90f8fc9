"""Reading a rollout from API objects (fargate_app.kube.rollout is pure): why a pod cannot run, in the cluster's own
words, from the container's waiting state, the scheduler's latest event or the PodScheduled condition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from fargate_app.kube.rollout import (
    deployment_progress,
    deployment_settled,
    on_fargate,
    parse_time,
    pending_since,
    pod_problem,
    summarize_pod,
)

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


def container(name: str, ready: bool, restarts: int = 0, **state: Any) -> dict[str, Any]:
    return {"name": name, "ready": ready, "restartCount": restarts, "state": state or {"running": {}}}


class TestPodColumns:
    """``kubectl get pods -o wide``'s columns (kubectl's printer: a waiting reason over the pod's reason over the
    phase, Terminating once deleted)."""

    def test_a_running_pod_reads_as_kubectl_prints_it(self) -> None:
        running = {
            "metadata": {"name": "web-1"},
            "spec": {"nodeName": "fargate-ip-10-0-1-5.us-west-2.compute.internal", "containers": [{}, {}]},
            "status": {
                "phase": "Running",
                "podIP": "10.0.1.5",
                "containerStatuses": [container("a", True, restarts=2), container("b", False, restarts=1)],
            },
        }

        summary = summarize_pod(running)

        assert summary.to_json() == {
            "name": "web-1",
            "ready": "1/2",
            "status": "Running",
            "phase": "Running",
            "restarts": 3,
            "ip": "10.0.1.5",
            "node": "fargate-ip-10-0-1-5.us-west-2.compute.internal",
            "message": None,
        }
        assert on_fargate(running)

    def test_containers_that_never_restarted_count_no_restart(self) -> None:
        fresh = pod(phase="Running")
        fresh["status"]["containerStatuses"] = [container("a", True), container("b", True)]  # restartCount 0 each
        assert summarize_pod(fresh).restarts == 0

    def test_a_waiting_container_shows_its_reason_and_message(self) -> None:
        stuck = pod(**waiting("ImagePullBackOff", "Back-off pulling image"))
        stuck["spec"]["containers"] = [{}]

        summary = summarize_pod(stuck)

        assert (summary.status, summary.phase, summary.message, summary.ready) == (
            "ImagePullBackOff",
            "Pending",
            "Back-off pulling image",
            "0/1",
        )

    def test_the_pods_reason_and_message_when_no_container_waits(self) -> None:
        evicted = pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")

        summary = summarize_pod(evicted)

        assert (summary.status, summary.message, summary.restarts, summary.ip, summary.node) == (
            "Evicted",
            "The node was low on resource: memory.",
            0,
            None,
            None,
        )

    def test_a_deleted_pod_is_terminating_whatever_its_phase(self) -> None:
        going = pod(phase="Running", node="fargate-ip-1", **waiting("ContainerCreating"))
        going["metadata"]["deletionTimestamp"] = "2026-12-01T03:01:00Z"

        assert summarize_pod(going).status == "Terminating"

    def test_without_a_spec_the_container_statuses_count(self) -> None:
        bare = {"metadata": {"name": "x"}, "status": {"containerStatuses": [container("a", True)]}}

        summary = summarize_pod(bare)

        assert (summary.ready, summary.status, summary.phase) == ("1/1", "Unknown", "Unknown")

    @pytest.mark.parametrize(
        ("node", "phase"),
        [("ip-10-0-1-5.us-west-2.compute.internal", "Running"), ("fargate-ip-1", "Pending"), (None, "Running")],
    )
    def test_only_a_running_pod_on_a_fargate_node_is_on_fargate(self, node: str | None, phase: str) -> None:
        assert not on_fargate(pod(node=node, phase=phase))


def deployment(
    generation: int = 2, observed: int | None = 2, replicas: int | None = 2, **status: Any
) -> dict[str, Any]:
    spec = {} if replicas is None else {"replicas": replicas}
    observed_generation = {} if observed is None else {"observedGeneration": observed}
    return {
        "metadata": {"namespace": "fargate", "name": "web", "generation": generation},
        "spec": spec,
        "status": {**observed_generation, **status},
    }


class TestDeploymentSettled:
    def test_settled_when_the_latest_spec_is_seen_and_every_replica_updated_and_ready(self) -> None:
        assert deployment_settled(deployment(readyReplicas=2, updatedReplicas=2, availableReplicas=2))

    @pytest.mark.parametrize(
        "unsettled",
        [
            deployment(observed=1, readyReplicas=2, updatedReplicas=2),  # the controller has not seen the new spec
            deployment(observed=None, readyReplicas=2, updatedReplicas=2),
            deployment(readyReplicas=1, updatedReplicas=2),
            deployment(readyReplicas=2, updatedReplicas=1),
            deployment(replicas=None, readyReplicas=2, updatedReplicas=2),  # the default: 1 replica, 2 ready
            deployment(generation=1, observed=None, readyReplicas=2, updatedReplicas=2),  # not observed at all yet
            deployment(replicas=1, readyReplicas=1),  # no replica updated yet
        ],
    )
    def test_not_settled_otherwise(self, unsettled: dict[str, Any]) -> None:
        assert not deployment_settled(unsettled)

    def test_progress_reads_the_counts_and_defaults(self) -> None:
        progress = deployment_progress(deployment(replicas=None, readyReplicas=None, availableReplicas=1))

        assert progress.to_json() == {
            "namespace": "fargate",
            "name": "web",
            "replicas": 1,
            "readyReplicas": 0,
            "updatedReplicas": 0,
            "availableReplicas": 1,
        }

    def test_a_deployment_before_its_first_generation_settles_on_its_replicas(self) -> None:
        fresh = deployment(observed=None, readyReplicas=2, updatedReplicas=2)
        del fresh["metadata"]["generation"]
        assert deployment_settled(fresh)

    def test_counts_the_status_omits_are_zero(self) -> None:
        progress = deployment_progress(deployment())
        assert (progress.ready_replicas, progress.updated_replicas, progress.available_replicas) == (0, 0, 0)


def test_an_event_without_any_time_counts_as_the_oldest() -> None:
    timeless = {**scheduling_event("web-1", "timeless", START), "lastTimestamp": None}
    timed = scheduling_event("web-1", "timed", START)
    assert pod_problem(pod(), [timed, timeless]) == "FailedScheduling: timed"
    assert pod_problem(pod(), [timeless]) == "FailedScheduling: timeless"
