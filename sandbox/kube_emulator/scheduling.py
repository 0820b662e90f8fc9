"""Pluggable scheduling: given a pod, where (and whether) it runs.

The deployment controller asks the scheduler about every pod that is not Running yet, at every reconcile, so a
decision may change over time (a Fargate profile becoming ACTIVE, an image reaching the cache). Decisions:
- :class:`Bind`: the pod runs on that node (the controller creates the node object and marks the pod Running);
- :class:`Unschedulable`: the pod stays Pending, with a ``FailedScheduling`` event carrying the message;
- :class:`ImagePullFailed`: the pod is bound but its container waits in ``ErrImagePull``, then ``ImagePullBackOff``;
- :class:`Wait`: nothing to report yet (a micro-VM still starting).

:class:`FargateLikeScheduler` is the hook point of the sandbox (design.md §6.8): it supplies ``profile_matches``
(namespace + labels against ACTIVE Fargate profiles) and ``image_error`` (does the image resolve through the cache).
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Protocol


@dataclass(frozen=True)
class Bind:
    node: str
    pod_ip: str
    node_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Unschedulable:
    message: str


@dataclass(frozen=True)
class ImagePullFailed:
    node: str
    pod_ip: str
    message: str


@dataclass(frozen=True)
class Wait:
    pass


Decision = Bind | Unschedulable | ImagePullFailed | Wait


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


class FargateLikeScheduler:
    """Pods matching a Fargate profile each get their own ``fargate-ip-….<region>.compute.internal`` node."""

    scheduler_name = "fargate-scheduler"

    def __init__(
        self,
        region: str,
        profile_matches: Callable[[str, dict[str, str]], bool],
        image_error: Callable[[str], str | None] = lambda image: None,
        subnet: str = "10.0.1.0/24",
    ) -> None:
        self.region = region
        self.profile_matches = profile_matches
        self.image_error = image_error
        self._addresses = itertools.islice(ipaddress.ip_network(subnet).hosts(), 10, None)
        self._assigned: dict[str, str] = {}
        self._lock = threading.Lock()

    def _address(self, pod_uid: str) -> str:
        with self._lock:
            if pod_uid not in self._assigned:
                self._assigned[pod_uid] = str(next(self._addresses))
            return self._assigned[pod_uid]

    def node_name(self, ip: str) -> str:
        return f"fargate-ip-{ip.replace('.', '-')}.{self.region}.compute.internal"

    def schedule(self, pod: dict[str, Any], nodes: list[dict[str, Any]]) -> Decision:
        metadata = pod["metadata"]
        if not self.profile_matches(metadata["namespace"], metadata.get("labels") or {}):
            return Unschedulable(no_node_message(nodes))
        ip = self._address(metadata["uid"])
        node = self.node_name(ip)
        for container in pod["spec"]["containers"]:
            problem = self.image_error(container["image"])
            if problem:
                return ImagePullFailed(node=node, pod_ip=ip, message=problem)
        labels = {"eks.amazonaws.com/compute-type": "fargate", "topology.kubernetes.io/region": self.region}
        return Bind(node=node, pod_ip=ip, node_labels=labels)


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
