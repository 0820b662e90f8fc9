"""Pluggable scheduling: given a pod, where (and whether) it runs.

The deployment controller asks the scheduler about every pod that is not Running yet, at every reconcile, so a
decision may change over time (a Fargate profile becoming ACTIVE, an image reaching the cache). Decisions:
- :class:`Bind`: the pod runs on that node (the controller creates the node object and marks the pod Running);
- :class:`Unschedulable`: the pod stays Pending, with a ``FailedScheduling`` event carrying the message;
- :class:`ImagePullFailed`: the pod is bound but its container waits in ``ErrImagePull``, then ``ImagePullBackOff``;
- :class:`Starting`: the pod has its node, its container is being created (the image pull): Pending, ContainerCreating;
- :class:`Wait`: nothing to report yet (a micro-VM still starting).

:class:`FargateLikeScheduler` is the hook point of the sandbox: it supplies ``profiles`` (the cluster's ACTIVE Fargate
profiles) and ``image_error`` (does the image resolve through the cache), and takes the time Fargate needs to start a
pod (:class:`PodTiming`).

Fargate placement is decided once, when the pod is created (``admit``), as EKS's mutating webhook does (EKS user
guide, "AWS Fargate" / "Fargate profile"): a pod matching an ACTIVE profile gets ``schedulerName: fargate-scheduler``
and the annotation ``eks.amazonaws.com/fargate-profile: <name>``; when several match, the pod's label of the same key
names the profile, else one of them is used (here: the first by name, for determinism); a pod matching none goes to the
default scheduler and stays Pending on a Fargate-only cluster, whatever profile becomes ACTIVE later, until it is
recreated. Selectors match with ``*`` and ``?`` wildcards in namespace and label values (EKS, 2022) — matched here by
this module alone, never by the project's production code.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Protocol


@dataclass(frozen=True)
class _Placed:
    """A node and address were given to the pod (what the decisions below have in common)."""

    node: str
    pod_ip: str
    node_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Bind(_Placed):
    """The pod runs."""


@dataclass(frozen=True)
class Starting(_Placed):
    """The pod is on its node, its containers not yet started."""


@dataclass(frozen=True)
class ImagePullFailed(_Placed):
    message: str = ""


@dataclass(frozen=True)
class Unschedulable:
    message: str


@dataclass(frozen=True)
class Wait:
    pass


Decision = Bind | Unschedulable | ImagePullFailed | Starting | Wait


@dataclass(frozen=True)
class PodTiming:
    """How long Fargate takes to start and to stop a pod, in the emulator's (scaled) seconds.

    Fargate starts a micro-VM per pod, registers it as a node, then pulls the image: users report about 60 s from
    pod creation to Running, often 60-90 s (aws/containers-roadmap#649 "Improve Fargate Node Startup Time", and #696:
    "consistently ... around 60 seconds" for a 250 MB image). The emulator uses 40 s until the node is bound and 20 s
    more for the image pull. Stopping: the kubelet sends SIGTERM and waits up to the pod's
    terminationGracePeriodSeconds (30 s by default; Kubernetes documentation, "Termination of Pods") before it kills
    the containers, and the Fargate node goes with the pod. The emulated containers are no processes that could exit
    earlier, so a deleted pod stays Terminating for the upper bound Kubernetes allows: its grace period.
    """

    node_seconds: float = 0.0
    start_seconds: float = 0.0
    # A deleted pod stays Terminating for its terminationGracePeriodSeconds times this (0: it goes at once).
    grace_scale: float = 0.0

    @classmethod
    def fargate(cls, time_scale: float = 1.0) -> PodTiming:
        return cls(node_seconds=40 * time_scale, start_seconds=60 * time_scale, grace_scale=time_scale)


class Scheduler(Protocol):
    scheduler_name: str

    def schedule(self, pod: dict[str, Any], nodes: list[dict[str, Any]]) -> Decision: ...


def no_node_message(nodes: list[dict[str, Any]]) -> str:
    """kube-scheduler's FailedScheduling message when only (tainted) Fargate nodes exist, or none at all."""
    if not nodes:
        return "no nodes available to schedule pods"
    count = len(nodes)
    return (
        f"0/{count} nodes are available: {count} node(s) had untolerated taint "
        f"{{eks.amazonaws.com/compute-type: fargate}}. preemption: 0/{count} nodes are available: {count} "
        "Preemption is not helpful for scheduling."
    )


class NoCapacityScheduler:
    """A cluster with no node for the pod: every pod stays Pending with FailedScheduling (the emulator default)."""

    scheduler_name = "default-scheduler"

    def schedule(self, pod: dict[str, Any], nodes: list[dict[str, Any]]) -> Decision:
        return Unschedulable(no_node_message(nodes))


FARGATE_SCHEDULER = "fargate-scheduler"
DEFAULT_SCHEDULER = "default-scheduler"
# The annotation EKS's webhook sets, and the pod label that picks one of several matching profiles.
FARGATE_PROFILE_KEY = "eks.amazonaws.com/fargate-profile"


class FargateLikeScheduler:
    """Pods admitted for Fargate each get their own ``fargate-ip-….<region>.compute.internal`` node."""

    scheduler_name = FARGATE_SCHEDULER

    def __init__(
        self,
        region: str,
        profiles: Callable[[], list[dict[str, Any]]],
        image_error: Callable[[str, dict[str, Any]], str | None] = lambda image, pod: None,
        subnet: str = "10.0.1.0/24",
        timing: PodTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.region = region
        self.profiles = profiles
        self.image_error = image_error
        self.timing = timing or PodTiming()
        self.clock = clock
        self._addresses = itertools.islice(ipaddress.ip_network(subnet).hosts(), 10, None)
        self._released: list[str] = []  # addresses of pods that are gone, handed out again (a long-lived sandbox)
        self._assigned: dict[str, str] = {}
        self._placed_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def _address(self, pod_uid: str) -> str:
        with self._lock:
            if pod_uid not in self._assigned:
                self._assigned[pod_uid] = self._released.pop(0) if self._released else str(next(self._addresses))
            return self._assigned[pod_uid]

    def node_name(self, ip: str) -> str:
        return f"fargate-ip-{ip.replace('.', '-')}.{self.region}.compute.internal"

    def _seconds_since_placed(self, pod_uid: str) -> float:
        """Seconds since the scheduler first accepted the pod for Fargate (its micro-VM started then)."""
        with self._lock:
            placed = self._placed_at.setdefault(pod_uid, self.clock())
        return self.clock() - placed

    def admit(self, pod: dict[str, Any]) -> None:
        """At creation: place the pod on Fargate if an ACTIVE profile selects it now (EKS's mutating webhook)."""
        metadata, spec = pod["metadata"], pod.setdefault("spec", {})
        labels = metadata.get("labels") or {}
        matching = sorted(
            (
                profile
                for profile in self.profiles()
                if profile.get("status") == "ACTIVE"
                and selector_matcher(profile.get("selectors") or [])(metadata["namespace"], labels)
            ),
            key=lambda profile: str(profile["fargateProfileName"]),
        )
        if not matching:
            spec["schedulerName"] = DEFAULT_SCHEDULER
            return
        chosen = next((p for p in matching if p["fargateProfileName"] == labels.get(FARGATE_PROFILE_KEY)), matching[0])
        spec["schedulerName"] = FARGATE_SCHEDULER
        metadata.setdefault("annotations", {})[FARGATE_PROFILE_KEY] = chosen["fargateProfileName"]

    def schedule(self, pod: dict[str, Any], nodes: list[dict[str, Any]]) -> Decision:
        metadata = pod["metadata"]
        if pod["spec"].get("schedulerName") != FARGATE_SCHEDULER:
            # Admitted when no profile selected it: the default scheduler finds only Fargate's tainted nodes.
            return Unschedulable(no_node_message(nodes))
        elapsed = self._seconds_since_placed(metadata["uid"])
        if elapsed < self.timing.node_seconds:
            return Wait()
        ip = self._address(metadata["uid"])
        node = self.node_name(ip)
        for container in pod["spec"]["containers"]:
            problem = self.image_error(container["image"], pod)
            if problem:
                return ImagePullFailed(node=node, pod_ip=ip, message=problem)
        # The labels of an EKS Fargate node (kubectl get node --show-labels on a Fargate node)
        labels = {
            "eks.amazonaws.com/compute-type": "fargate",
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "topology.kubernetes.io/region": self.region,
            "topology.kubernetes.io/zone": f"{self.region}a",
            "failure-domain.beta.kubernetes.io/region": self.region,
            "failure-domain.beta.kubernetes.io/zone": f"{self.region}a",
        }
        if elapsed < self.timing.start_seconds:
            return Starting(node=node, pod_ip=ip, node_labels=labels)
        return Bind(node=node, pod_ip=ip, node_labels=labels)

    def forget(self, pod_uid: str) -> None:
        """The pod is gone: its address and clock are released."""
        with self._lock:
            self._placed_at.pop(pod_uid, None)
            address = self._assigned.pop(pod_uid, None)
            if address is not None:
                self._released.append(address)


def static_profiles(*selector_sets: list[dict[str, Any]]) -> Callable[[], list[dict[str, Any]]]:
    """ACTIVE profiles ``fp-0``, ``fp-1``… with these selectors: a ``profiles`` for emulator-only tests."""
    profiles = [
        {"fargateProfileName": f"fp-{index}", "status": "ACTIVE", "selectors": selectors}
        for index, selectors in enumerate(selector_sets)
    ]
    return lambda: profiles


def selector_matcher(selectors: list[dict[str, Any]]) -> Callable[[str, dict[str, str]], bool]:
    """A ``profile_matches`` from static Fargate selectors (namespace + labels, ``*``/``?`` wildcards as EKS allows)."""

    def matches(namespace: str, labels: dict[str, str]) -> bool:
        for selector in selectors:
            if not fnmatchcase(namespace, selector.get("namespace", "")):
                continue
            wanted = selector.get("labels") or {}
            if all(key in labels and fnmatchcase(labels[key], pattern) for key, pattern in wanted.items()):
                return True
        return False

    return matches
