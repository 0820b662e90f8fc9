"""The controllers the steps observe: Deployment → ReplicaSet → Pods, scheduling, nodes, events, garbage collection.

They run synchronously (``reconcile``) after every write and before every read the server answers, instead of in a
background thread: tests see deterministic states, and time-dependent schedulers still progress on each poll.
Simplifications, documented: a changed pod template replaces the old ReplicaSet at once (no surge); deleting a
Deployment removes its ReplicaSets in the same reconcile, whatever the propagation policy (the real garbage collector
does it shortly after for Background, before the owner for Foreground). Pods are not removed at once: a deleted pod
is Terminating (``deletionTimestamp`` set) for its grace period (``PodTiming.grace_scale`` scales it), as the kubelet
stops its containers, and only then disappears with its Fargate node.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kube_emulator.resources import BY_KIND
from kube_emulator.scheduling import Bind, ImagePullFailed, PodTiming, Scheduler, Starting, Unschedulable
from kube_emulator.store import Store, now_rfc3339

DEPLOYMENT, REPLICASET, POD, NODE, EVENT = (BY_KIND[k] for k in ("Deployment", "ReplicaSet", "Pod", "Node", "Event"))
# The alphabet of apimachinery's rand.String (no vowels, no confusable digits) for pod name suffixes and hashes.
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def template_hash(template: dict[str, Any]) -> str:
    digest = int(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest(), 16)
    out = ""
    for _ in range(10):
        digest, index = divmod(digest, len(SAFE_ALPHABET))
        out += SAFE_ALPHABET[index]
    return out


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _owned_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(ref.get("uid") == owner["metadata"]["uid"] for ref in obj["metadata"].get("ownerReferences") or [])


def terminating(pod: dict[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


DEFAULT_GRACE_SECONDS = 30  # a pod's terminationGracePeriodSeconds when its spec has none (core/v1 defaults)


def qos_class(spec: dict[str, Any]) -> str:
    """Kubernetes' GetPodQOS (pkg/apis/core/helper/qos): Guaranteed when every container limits CPU and memory and
    requests what it limits (a request left out defaults to the limit), BestEffort when none requests or limits
    anything, else Burstable."""
    containers = [*spec.get("containers", []), *spec.get("initContainers", [])]
    resources = [container.get("resources") or {} for container in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    for r in resources:
        limits, requests = r.get("limits") or {}, r.get("requests") or {}
        if any(name not in limits for name in ("cpu", "memory")):
            return "Burstable"
        if any(name in requests and requests[name] != limits[name] for name in ("cpu", "memory")):
            return "Burstable"
    return "Guaranteed"


@dataclass(eq=False)  # one per emulator, compared by identity
class Controllers:
    store: Store
    scheduler: Scheduler
    timing: PodTiming = field(default_factory=PodTiming)
    clock: Callable[[], float] = time.monotonic
    version: str = "1.31"
    _stops_at: dict[str, float] = field(default_factory=dict, init=False)  # pod uid -> when its containers stopped
    _reconciled_at: float = field(default=float("-inf"), init=False)

    def refresh(self, interval: float = 0.1) -> None:
        """Reconcile unless a reconcile ran in the last ``interval`` seconds: watchers tick often, and together."""
        if self.clock() - self._reconciled_at >= interval:
            self.reconcile()

    def reconcile(self) -> None:
        with self.store.lock:
            self._reconciled_at = self.clock()
            self._finish_terminations()
            self._collect_garbage()
            for deployment in self.store.list(DEPLOYMENT):
                self._reconcile_deployment(deployment)
            for pod in self.store.list(POD):
                if pod["status"].get("phase") != "Running" and not terminating(pod):
                    self._schedule(pod)
            for replica_set in self.store.list(REPLICASET):
                self._update_replica_set_status(replica_set)
            for deployment in self.store.list(DEPLOYMENT):
                self._update_status(deployment)
            self._remove_idle_nodes()

    # --- pod termination -------------------------------------------------------------------------------------------
    def terminate_pod(self, pod: dict[str, Any]) -> dict[str, Any]:
        """Start a graceful deletion (the API's DELETE of a pod, the ReplicaSet scaling down, the garbage collector):
        the pod stays, Terminating, until its containers have stopped. Returns the pod as stored now."""
        metadata = pod["metadata"]
        with self.store.lock:
            if metadata["uid"] in self._stops_at or terminating(pod):
                return pod
            grace = int((pod.get("spec") or {}).get("terminationGracePeriodSeconds", DEFAULT_GRACE_SECONDS))
            stop = grace * self.timing.grace_scale
            if stop <= 0:
                self._remove_pod(pod)
                return pod
            deadline = datetime.now(UTC) + timedelta(seconds=grace)
            metadata["deletionTimestamp"] = deadline.strftime("%Y-%m-%dT%H:%M:%SZ")
            metadata["deletionGracePeriodSeconds"] = grace
            self._stops_at[metadata["uid"]] = self.clock() + stop
            for container in pod["spec"]["containers"]:
                self._event(pod, "Normal", "Killing", f"Stopping container {container['name']}", "kubelet")
            return self.store.update(POD, pod)

    def _finish_terminations(self) -> None:
        now = self.clock()
        for pod in self.store.list(POD):
            stops_at = self._stops_at.get(pod["metadata"]["uid"])
            if stops_at is not None and now >= stops_at:
                self._remove_pod(pod)

    def _remove_pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        self._stops_at.pop(uid, None)
        if self.store.find(POD, pod["metadata"]["namespace"], pod["metadata"]["name"]) is not None:
            self.store.delete(POD, pod["metadata"]["namespace"], pod["metadata"]["name"])
        forget = getattr(self.scheduler, "forget", None)
        if forget is not None:
            forget(uid)

    # --- ownership -------------------------------------------------------------------------------------------------
    def _collect_garbage(self) -> None:
        uids = {obj["metadata"]["uid"] for resource in (DEPLOYMENT, REPLICASET) for obj in self.store.list(resource)}
        for obj in self.store.list(REPLICASET):
            refs = obj["metadata"].get("ownerReferences") or []
            if refs and not any(ref["uid"] in uids for ref in refs):
                self.store.delete(REPLICASET, obj["metadata"]["namespace"], obj["metadata"]["name"])
                uids.discard(obj["metadata"]["uid"])
        for pod in self.store.list(POD):
            refs = pod["metadata"].get("ownerReferences") or []
            if refs and not any(ref["uid"] in uids for ref in refs):
                self.terminate_pod(pod)

    def _reconcile_deployment(self, deployment: dict[str, Any]) -> None:
        metadata = deployment["metadata"]
        template = deployment["spec"]["template"]
        pod_hash = template_hash(template)
        name = f"{metadata['name']}-{pod_hash}"
        replaced = [
            replica_set
            for replica_set in self.store.list(REPLICASET, metadata["namespace"])
            if _owned_by(replica_set, deployment) and replica_set["metadata"]["name"] != name
        ]
        for old in replaced:
            self.store.delete(REPLICASET, metadata["namespace"], old["metadata"]["name"])
        if replaced:  # their pods are garbage now; otherwise nothing became garbage since reconcile() collected
            self._collect_garbage()
        replicas = int(deployment["spec"].get("replicas", 1))
        replica_set = self.store.find(REPLICASET, metadata["namespace"], name)
        labels = {**(template["metadata"].get("labels") or {}), "pod-template-hash": pod_hash}
        if replica_set is None:
            replica_set = self.store.create(
                REPLICASET,
                {
                    "metadata": {
                        "name": name,
                        "namespace": metadata["namespace"],
                        "labels": labels,
                        "ownerReferences": [owner_reference(deployment)],
                    },
                    "spec": {
                        "replicas": replicas,
                        "selector": {
                            "matchLabels": {
                                **deployment["spec"]["selector"]["matchLabels"],
                                "pod-template-hash": pod_hash,
                            }
                        },
                        "template": {**template, "metadata": {**template["metadata"], "labels": labels}},
                    },
                    "status": {"replicas": 0},
                },
            )
        elif replica_set["spec"]["replicas"] != replicas:
            replica_set["spec"]["replicas"] = replicas
            replica_set = self.store.update(REPLICASET, replica_set)
        pods = [
            p for p in self.store.list(POD, metadata["namespace"]) if _owned_by(p, replica_set) and not terminating(p)
        ]
        for pod in pods[replicas:]:
            self.terminate_pod(pod)
        for _ in range(replicas - len(pods)):
            self._create_pod(replica_set, labels)

    def _update_replica_set_status(self, replica_set: dict[str, Any]) -> None:
        """The ReplicaSet controller's counts: pods owned (not terminating), those labelled alike, ready, available."""
        metadata = replica_set["metadata"]
        pods = [
            p for p in self.store.list(POD, metadata["namespace"]) if _owned_by(p, replica_set) and not terminating(p)
        ]
        ready = sum(1 for p in pods if p["status"].get("phase") == "Running")
        status: dict[str, Any] = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": metadata.get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v != 0 or k == "replicas"}  # zero counts are omitted
        if status != (replica_set.get("status") or {}):
            replica_set["status"] = status
            self.store.update(REPLICASET, replica_set)

    def _create_pod(self, replica_set: dict[str, Any], labels: dict[str, str]) -> None:
        template = copy.deepcopy(replica_set["spec"]["template"])
        suffix = "".join(secrets.choice(SAFE_ALPHABET) for _ in range(5))
        spec = template["spec"]
        spec.setdefault("restartPolicy", "Always")
        for container in spec["containers"]:
            container.setdefault("imagePullPolicy", "IfNotPresent")
        pod = {
            "metadata": {
                "name": f"{replica_set['metadata']['name']}-{suffix}",
                "namespace": replica_set["metadata"]["namespace"],
                "labels": labels,
                "ownerReferences": [owner_reference(replica_set)],
            },
            "spec": spec,
        }
        self.admit(pod)
        self.store.create(POD, pod)

    def admit(self, pod: dict[str, Any]) -> None:
        """Admission of a new pod (from a ReplicaSet or the API): the scheduler's placement webhook, if it has one."""
        admit = getattr(self.scheduler, "admit", None)
        if admit is not None:
            admit(pod)
        pod.setdefault("spec", {}).setdefault("schedulerName", self.scheduler.scheduler_name)
        # The pod strategy's PrepareForCreate (pkg/registry/core/pod/strategy.go): a new pod is Pending, with its QoS.
        pod["status"] = {"phase": "Pending", "qosClass": qos_class(pod["spec"])}

    def evict(self, annotation: str, value: str) -> list[str]:
        """Delete (gracefully) every pod annotated ``annotation: value``; their owners recreate them. The pods'
        namespace/name."""
        evicted = []
        with self.store.lock:
            for pod in self.store.list(POD):
                if (pod["metadata"].get("annotations") or {}).get(annotation) == value and not terminating(pod):
                    self.terminate_pod(pod)
                    evicted.append(f"{pod['metadata']['namespace']}/{pod['metadata']['name']}")
        return evicted

    # --- scheduling ------------------------------------------------------------------------------------------------
    def _schedule(self, pod: dict[str, Any]) -> None:
        decision = self.scheduler.schedule(pod, self.store.list(NODE))
        now = now_rfc3339()
        status = pod["status"]
        names = [c["name"] for c in pod["spec"]["containers"]]
        if isinstance(decision, Unschedulable):
            status["conditions"] = [_condition("PodScheduled", "False", now, "Unschedulable", decision.message)]
            self._event(pod, "Warning", "FailedScheduling", decision.message, self.scheduler.scheduler_name)
        elif isinstance(decision, ImagePullFailed):
            self._bind(pod, decision.node, decision.pod_ip, {})
            backoff = any(
                (c.get("state") or {}).get("waiting", {}).get("reason") == "ErrImagePull"
                for c in status.get("containerStatuses") or []
            )
            reason = "ImagePullBackOff" if backoff else "ErrImagePull"
            message = (
                f'Back-off pulling image "{pod["spec"]["containers"][0]["image"]}"' if backoff else decision.message
            )
            status["containerStatuses"] = [
                _container(n, c["image"], {"waiting": {"reason": reason, "message": message}}, False)
                for n, c in zip(names, pod["spec"]["containers"], strict=True)
            ]
            status["conditions"] = [_condition("PodScheduled", "True", now)]
            self._event(pod, "Warning", "Failed", f"Failed to pull image: {decision.message}", "kubelet")
        elif isinstance(decision, Starting):
            if pod["spec"].get("nodeName") == decision.node:
                return  # still pulling: nothing new to record
            self._bind(pod, decision.node, decision.pod_ip, decision.node_labels)
            waiting = {"waiting": {"reason": "ContainerCreating"}}
            status["containerStatuses"] = [
                _container(n, c["image"], waiting, False) for n, c in zip(names, pod["spec"]["containers"], strict=True)
            ]
            status["conditions"] = [_condition("PodScheduled", "True", now)]
            self._placed_events(pod, decision.node)
        elif isinstance(decision, Bind):
            # Seen on its node already (the Starting branch recorded its scheduling and pull), or placed only now: a
            # pod first looked at after its start time is due goes straight to Running, and its events still tell so
            placed_now = pod["spec"].get("nodeName") != decision.node or not status.get("containerStatuses")
            self._bind(pod, decision.node, decision.pod_ip, decision.node_labels)
            status.update(phase="Running", startTime=now)
            status["containerStatuses"] = [
                _container(n, c["image"], {"running": {"startedAt": now}}, True)
                for n, c in zip(names, pod["spec"]["containers"], strict=True)
            ]
            status["conditions"] = [
                _condition(t, "True", now) for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ]
            if placed_now:
                self._placed_events(pod, decision.node)
            self._event(pod, "Normal", "Started", f"Started container {names[0]}", "kubelet")
        else:
            return
        self.store.update(POD, pod)

    def _bind(self, pod: dict[str, Any], node: str, ip: str, node_labels: dict[str, str]) -> None:
        pod["spec"]["nodeName"] = node
        pod["status"].update(podIP=ip, podIPs=[{"ip": ip}], hostIP=ip)
        if self.store.find(NODE, None, node) is None:
            self.store.create(
                NODE,
                {
                    "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, **node_labels}},
                    "spec": {
                        "taints": [
                            {"key": "eks.amazonaws.com/compute-type", "value": "fargate", "effect": "NoSchedule"}
                        ]
                    },
                    "status": {
                        "addresses": [
                            {"type": "InternalIP", "address": ip},
                            {"type": "Hostname", "address": node},
                        ],
                        "nodeInfo": self._node_info(),
                        "conditions": [
                            _condition(
                                "Ready", "True", now_rfc3339(), "KubeletReady", "kubelet is posting ready status"
                            )
                        ],
                    },
                },
            )

    def _node_info(self) -> dict[str, str]:
        """What the kubelet of a Fargate micro-VM reports (an EKS Fargate node's ``status.nodeInfo``)."""
        return {
            "kubeletVersion": f"v{self.version}.0-eks-emulated",
            "kubeProxyVersion": f"v{self.version}.0-eks-emulated",
            "osImage": "Amazon Linux 2",
            "kernelVersion": "5.10.0-emulated.amzn2.x86_64",
            "containerRuntimeVersion": "containerd://1.7.0",
            "operatingSystem": "linux",
            "architecture": "amd64",
        }

    def _remove_idle_nodes(self) -> None:
        # A Fargate node exists for exactly one pod: it goes when its pod goes.
        busy = {p["spec"].get("nodeName") for p in self.store.list(POD)}
        for node in self.store.list(NODE):
            if node["metadata"]["name"] not in busy:
                self.store.delete(NODE, None, node["metadata"]["name"])

    def _placed_events(self, pod: dict[str, Any], node: str) -> None:
        """kube-scheduler's event for a pod bound to ``node``, and the kubelet's as it starts pulling the image."""
        where = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self._event(
            pod, "Normal", "Scheduled", f"Successfully assigned {where} to {node}", self.scheduler.scheduler_name
        )
        self._event(pod, "Normal", "Pulling", f'Pulling image "{pod["spec"]["containers"][0]["image"]}"', "kubelet")

    def _event(self, pod: dict[str, Any], kind: str, reason: str, message: str, component: str) -> None:
        metadata = pod["metadata"]
        now = now_rfc3339()
        for event in self.store.list(
            EVENT, metadata["namespace"], field_selector=f"involvedObject.uid={metadata['uid']}"
        ):
            if event["reason"] == reason and event["message"] == message:
                event.update(count=int(event.get("count", 1)) + 1, lastTimestamp=now)
                self.store.update(EVENT, event)
                return
        self.store.create(
            EVENT,
            {
                "metadata": {"name": f"{metadata['name']}.{secrets.token_hex(8)}", "namespace": metadata["namespace"]},
                "involvedObject": {
                    "kind": "Pod",
                    "namespace": metadata["namespace"],
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "apiVersion": "v1",
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "source": {"component": component},
                "reportingComponent": component,
                "reportingInstance": "",
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )

    # --- status ----------------------------------------------------------------------------------------------------
    def _update_status(self, deployment: dict[str, Any]) -> None:
        metadata = deployment["metadata"]
        current = f"{metadata['name']}-{template_hash(deployment['spec']['template'])}"
        replica_sets = {
            rs["metadata"]["uid"]: rs["metadata"]["name"]
            for rs in self.store.list(REPLICASET, metadata["namespace"])
            if _owned_by(rs, deployment)
        }
        pods = [
            p
            for p in self.store.list(POD, metadata["namespace"])
            if any(r["uid"] in replica_sets for r in p["metadata"].get("ownerReferences") or []) and not terminating(p)
        ]
        ready = sum(1 for p in pods if p["status"].get("phase") == "Running")
        updated = sum(
            1 for p in pods if any(replica_sets.get(r["uid"]) == current for r in p["metadata"]["ownerReferences"])
        )
        wanted = int(deployment["spec"].get("replicas", 1))
        previous = deployment.get("status") or {}
        stamp = {c["type"]: c for c in previous.get("conditions") or []}
        available = (
            ("True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if ready >= wanted
            else ("False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
        )
        progressing = (
            ("True", "NewReplicaSetAvailable", f'ReplicaSet "{current}" has successfully progressed.')
            if ready >= wanted
            else ("True", "ReplicaSetUpdated", f'ReplicaSet "{current}" is progressing.')
        )
        conditions = []
        for kind, (state, reason, message) in (("Available", available), ("Progressing", progressing)):
            old = stamp.get(kind)
            if old and (old["status"], old["reason"], old["message"]) == (state, reason, message):
                conditions.append(old)
            else:
                conditions.append(
                    {**_condition(kind, state, now_rfc3339(), reason, message), "lastUpdateTime": now_rfc3339()}
                )
        status: dict[str, Any] = {
            "observedGeneration": metadata.get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "conditions": conditions,
        }
        if wanted - ready > 0:
            status["unavailableReplicas"] = wanted - ready
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}  # zero counts are omitted
        if status != previous:
            deployment["status"] = status
            self.store.update(DEPLOYMENT, deployment)


def _condition(
    kind: str, status: str, now: str, reason: str | None = None, message: str | None = None
) -> dict[str, Any]:
    condition = {"type": kind, "status": status, "lastTransitionTime": now}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def _container(name: str, image: str, state: dict[str, Any], ready: bool) -> dict[str, Any]:
    status = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "restartCount": 0,
        "started": ready,
        "state": state,
    }
    if ready:
        status["imageID"] = image
    return status
