"""Steps ApplyApp, CheckRollout, DeleteApp and CheckPodsGone: the walkthrough's ``kubectl`` part, made from Lambda.

Every call goes through the typed ``kubernetes`` client (its own layer, imported lazily by :mod:`.client`) and every
failure is translated once by :func:`fargate_app.kube.errors.translate_api_error`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fargate_app.config import MANAGED_BY, Settings
from fargate_app.errors import KubernetesConflict, PodsNotYetGone, PollTimeout, RolloutFailed, RolloutNotYetReady
from fargate_app.kube.client import DEFAULT_APIS, REQUEST_TIMEOUT, KubeApi, KubeApiCache
from fargate_app.kube.errors import KubernetesNotFound, translate_api_error
from fargate_app.kube.manifests import app_manifests, describe_object, validate_manifest
from fargate_app.kube.models import (
    AppliedApp,
    ApplyAppEvent,
    CheckPodsGoneEvent,
    CheckRolloutEvent,
    DeletedApp,
    ExposedIngress,
    KubeObjectRef,
    PodsGone,
    PodSummary,
    RolloutStatus,
)
from fargate_app.kube.rollout import (
    deployment_progress,
    deployment_settled,
    on_fargate,
    pending_since,
    pod_problem,
    summarize_pod,
)
from fargate_app.models import APP_NAME_LABEL, MANAGED_BY_LABEL, ProvisionRequest
from fargate_app.observability import logger

FIELD_MANAGER = MANAGED_BY
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML: the client sends the dict as JSON under this type
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def call_api(action: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One API call with the step timeout; client and transport errors come out as named errors."""
    try:
        return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    except Exception as exc:
        from kubernetes.client.exceptions import OpenApiException
        from urllib3.exceptions import HTTPError

        if isinstance(exc, (OpenApiException, HTTPError, OSError)):
            raise translate_api_error(exc, action) from exc
        raise


def as_dict(api: KubeApi, obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = api.api_client.sanitize_for_serialization(obj)
    return data


def _apply(api: KubeApi, manifest: dict[str, Any]) -> None:
    """Server-side apply one object with our field manager, without forcing ownership of others' fields."""
    kind, metadata = manifest["kind"], manifest["metadata"]
    name, namespace = metadata["name"], metadata.get("namespace")
    options = {"field_manager": FIELD_MANAGER, "force": False, "_content_type": APPLY_PATCH}
    action = f"apply {describe_object(manifest)}"
    if kind == "Namespace":
        call_api(action, api.core.patch_namespace, name, manifest, **options)
    elif kind == "Deployment":
        call_api(action, api.apps.patch_namespaced_deployment, name, namespace, manifest, **options)
    elif kind == "Service":
        call_api(action, api.core.patch_namespaced_service, name, namespace, manifest, **options)
    elif kind == "Ingress":
        call_api(action, api.networking.patch_namespaced_ingress, name, namespace, manifest, **options)
    else:  # app_manifests builds only the kinds above
        raise TypeError(f"no apply for kind {kind}")


def _namespace_exists(api: KubeApi, namespace: str) -> bool:
    try:
        call_api(f"read namespace {namespace}", api.core.read_namespace, namespace)
    except KubernetesNotFound:
        return False
    return True


def _replicas_owner(api: KubeApi, request: ProvisionRequest) -> str | None:
    """The field manager other than ours that owns the live Deployment's ``spec.replicas`` (a HorizontalPodAutoscaler,
    ``kubectl scale``), or None. Setting the field again would be a conflict; forcing it would fight that manager."""
    where = f"{request.namespace}/{request.app}"
    try:
        live = as_dict(
            api,
            call_api(f"read deployment {where}", api.apps.read_namespaced_deployment, request.app, request.namespace),
        )
    except KubernetesNotFound:
        return None
    for entry in live["metadata"].get("managedFields") or []:
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if entry.get("manager") != FIELD_MANAGER and "f:replicas" in spec:
            return str(entry.get("manager"))
    return None


def _prune(api: KubeApi, request: ProvisionRequest, kept_kinds: set[str]) -> list[KubeObjectRef]:
    """Delete the app's Ingress and Service when the request no longer has them (``expose.ingress`` or ``port``
    dropped): apply sets the desired state completely. Objects of that name we do not manage are left alone."""
    pruned = []
    for kind, read, delete in _app_object_apis(api):
        if kind in kept_kinds or kind == "Deployment":
            continue
        if _delete_if_ours(api, kind, read, delete, request, foreign_ok=True):
            pruned.append(KubeObjectRef(kind=kind, name=request.app, namespace=request.namespace))
    return pruned


def apply_app(
    settings: Settings, event: ApplyAppEvent, apis: KubeApiCache = DEFAULT_APIS, clock: Clock = _utcnow
) -> AppliedApp:
    """Validate every object against the cluster's schemas, then server-side apply them in order.

    An existing namespace is left as it is (it may be shared and is not ours to label); a missing one is created.
    Applying twice with the same input changes nothing (same resourceVersion and generation). The request is the
    whole desired state: an Ingress or Service the request no longer asks for is deleted. ``replicas`` is left out
    while another field manager owns it (an autoscaler or ``kubectl scale``): that manager decides the count.

    Raises:
        ManifestInvalid: an object fails the cluster version's schema, or the API server answers 400/422.
        KubernetesConflict: another field manager owns a field we set (the message names the fields).
        KubernetesForbidden: 401/403, the function's role has no (sufficient) EKS access entry.
        KubernetesUnavailable: 429/5xx or no answer; retryable.
        ClusterNotFound, ClusterNotActive: from DescribeCluster.
    """
    request = event.request
    api = apis.get(request.cluster, settings.region)
    manifests = app_manifests(
        request, event.image.cached, event.execution_arn, event.caller, event.fargate_profile_name
    )
    for manifest in manifests:
        validate_manifest(manifest, api.cluster.version)
    namespace_created = not _namespace_exists(api, request.namespace)
    replicas_owner = None if namespace_created else _replicas_owner(api, request)
    if replicas_owner is not None:
        deployment = next(manifest for manifest in manifests if manifest["kind"] == "Deployment")
        del deployment["spec"]["replicas"]
    applied: list[KubeObjectRef] = []
    for manifest in manifests:
        if manifest["kind"] == "Namespace" and not namespace_created:
            continue
        _apply(api, manifest)
        metadata = manifest["metadata"]
        applied.append(KubeObjectRef(kind=manifest["kind"], name=metadata["name"], namespace=metadata.get("namespace")))
    pruned = [] if namespace_created else _prune(api, request, {manifest["kind"] for manifest in manifests})
    logger.info(
        "applied app",
        extra={
            "cluster": request.cluster,
            "namespace": request.namespace,
            "app": request.app,
            "objects": len(applied),
            "pruned": [ref.kind for ref in pruned],
            "replicas_owner": replicas_owner,
        },
    )
    exposed = request.expose.ingress if request.expose else None
    ingress = (
        ExposedIngress(
            namespace=request.namespace, name=request.app, scheme=exposed.scheme, path=exposed.path, port=request.port
        )
        if exposed is not None and request.port is not None
        else None
    )
    return AppliedApp(
        namespace=request.namespace,
        name=request.app,
        objects=applied,
        namespace_created=namespace_created,
        pruned=pruned,
        replicas_managed_by=replicas_owner,
        ingress=ingress,
        applied_at=clock(),
    )


def _app_pods(api: KubeApi, request: ProvisionRequest) -> list[dict[str, Any]]:
    pods = call_api(
        f"list the pods of {request.namespace}/{request.app}",
        api.core.list_namespaced_pod,
        request.namespace,
        label_selector=f"{APP_NAME_LABEL}={request.app}",
    )
    return list(as_dict(api, pods).get("items") or [])


def _rollout_summary(where: str, deployment: dict[str, Any], summaries: list[PodSummary]) -> str:
    """``deployment fargate/web: 0/1 ready; web-7d9…-x2k: ContainerCreating on fargate-ip-…`` — what a check saw."""
    progress = deployment_progress(deployment)
    pods = "; ".join(f"{pod.name}: {pod.status}" + (f" on {pod.node}" if pod.node else "") for pod in summaries)
    return f"deployment {where}: {progress.ready_replicas}/{progress.replicas} ready" + (f"; {pods}" if pods else "")


def check_rollout(
    settings: Settings, event: CheckRolloutEvent, apis: KubeApiCache = DEFAULT_APIS, clock: Clock = _utcnow
) -> RolloutStatus:
    """One check of the rollout: the Deployment's counts and every pod with its phase and node.

    Raises:
        RolloutNotYetReady: not every pod runs on a Fargate node yet; the state's Retry checks again.
        RolloutFailed: the Deployment is gone, or a pod has been unschedulable (FailedScheduling) or unable to pull
            its image for longer than the grace period; the message quotes the cluster's event.
        PollTimeout: not ready ``ROLLOUT_TIMEOUT_SECONDS`` after the objects were applied.
        KubernetesForbidden, KubernetesUnavailable: as for every API call.
    """
    request = event.request
    api = apis.get(request.cluster, settings.region)
    where = f"{request.namespace}/{request.app}"
    try:
        deployment = as_dict(
            api,
            call_api(f"read deployment {where}", api.apps.read_namespaced_deployment, request.app, request.namespace),
        )
    except KubernetesNotFound as exc:
        raise RolloutFailed(f"deployment {where} disappeared during its rollout") from exc
    pods = [pod for pod in _app_pods(api, request) if not pod["metadata"].get("deletionTimestamp")]
    events: list[dict[str, Any]] | None = None
    now = clock()
    problems = []
    for pod in pods:
        if on_fargate(pod):
            continue
        if events is None:  # read the namespace's pod events once (even when there are none), only if a pod waits
            listed = call_api(
                f"list the events of namespace {request.namespace}",
                api.core.list_namespaced_event,
                request.namespace,
                field_selector="involvedObject.kind=Pod",
            )
            events = list(as_dict(api, listed).get("items") or [])
        problem = pod_problem(pod, events)
        since = pending_since(pod, event.started_at)
        if problem and since is not None and (now - since).total_seconds() >= settings.rollout_grace_seconds:
            problems.append(f"pod {pod['metadata']['name']}: {problem}")
    if problems:
        raise RolloutFailed(f"deployment {where} cannot run on Fargate: " + "; ".join(problems))
    summaries = [summarize_pod(pod) for pod in pods]
    if not (deployment_settled(deployment) and len(pods) >= 1 and all(on_fargate(pod) for pod in pods)):
        summary = _rollout_summary(where, deployment, summaries)
        waited = (now - event.started_at).total_seconds()
        if waited >= settings.rollout_timeout_seconds:
            raise PollTimeout(
                f"{summary} after {waited:.0f} s (ROLLOUT_TIMEOUT_SECONDS {settings.rollout_timeout_seconds}); "
                "see `kubectl describe pods` for why"
            )
        raise RolloutNotYetReady(summary)
    return RolloutStatus(
        deployment=deployment_progress(deployment),
        pods=summaries,
        nodes=sorted({summary.node for summary in summaries if summary.node}),
    )


def _app_object_apis(api: KubeApi) -> list[tuple[str, Any, Any]]:
    """(kind, read, delete) of the app's objects, in the order they are deleted (traffic stops before the pods go)."""
    return [
        ("Ingress", api.networking.read_namespaced_ingress, api.networking.delete_namespaced_ingress),
        ("Service", api.core.read_namespaced_service, api.core.delete_namespaced_service),
        ("Deployment", api.apps.read_namespaced_deployment, api.apps.delete_namespaced_deployment),
    ]


def _delete_if_ours(
    api: KubeApi, kind: str, read: Any, delete: Any, request: ProvisionRequest, *, foreign_ok: bool = False
) -> bool:
    """Delete one object of the app; False when it is already gone (or, with ``foreign_ok``, not ours).

    Raises:
        KubernetesConflict: an object of that name exists but this provisioner does not manage it.
    """
    where = f"{kind} {request.namespace}/{request.app}"
    try:
        current = as_dict(api, call_api(f"read {where}", read, request.app, request.namespace))
        manager = (current["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL)
        if manager != MANAGED_BY:
            if foreign_ok:
                return False
            raise KubernetesConflict(
                f"{where} is not managed by {MANAGED_BY} (label {MANAGED_BY_LABEL}={manager!r}); it was left in place"
            )
        # Background propagation (kubectl's default): the garbage collector removes the ReplicaSets and pods,
        # and CheckPodsGone waits for that.
        call_api(f"delete {where}", delete, request.app, request.namespace, propagation_policy="Background")
    except KubernetesNotFound:
        return False
    return True


def delete_app(
    settings: Settings, request: ProvisionRequest, apis: KubeApiCache = DEFAULT_APIS, clock: Clock = _utcnow
) -> DeletedApp:
    """Delete the app's Ingress, Service and Deployment, in that order (traffic stops before the pods go).

    The namespace stays: it may hold other apps or have existed before us, and deleting a namespace deletes
    everything in it. A missing object counts as deleted, so a retried or repeated teardown succeeds.

    Raises:
        KubernetesConflict: an object of the app's name exists but is not managed by this provisioner.
        KubernetesForbidden, KubernetesUnavailable: as for every API call.
    """
    api = apis.get(request.cluster, settings.region)
    deleted: list[KubeObjectRef] = []
    gone: list[KubeObjectRef] = []
    for kind, read, delete in _app_object_apis(api):
        ref = KubeObjectRef(kind=kind, name=request.app, namespace=request.namespace)
        (deleted if _delete_if_ours(api, kind, read, delete, request) else gone).append(ref)
    logger.info("deleted app", extra={"namespace": request.namespace, "app": request.app, "deleted": len(deleted)})
    return DeletedApp(deleted=deleted, already_gone=gone, deleted_at=clock())


def check_pods_gone(
    settings: Settings, event: CheckPodsGoneEvent, apis: KubeApiCache = DEFAULT_APIS, clock: Clock = _utcnow
) -> PodsGone:
    """One check after DeleteApp: are the app's pods gone (so the Fargate profile may be deleted)?

    Raises:
        PodsNotYetGone: pods remain (Terminating); the state's Retry checks again.
        PollTimeout: pods remain ``PODS_GONE_TIMEOUT_SECONDS`` after the deletes were sent.
        KubernetesForbidden, KubernetesUnavailable: as for every API call.
    """
    request = event.request
    api = apis.get(request.cluster, settings.region)
    try:
        remaining = [summarize_pod(pod) for pod in _app_pods(api, request)]
    except KubernetesNotFound:  # the namespace itself is gone
        remaining = []
    if remaining:
        where = f"{request.namespace}/{request.app}"
        listed = ", ".join(f"{pod.name} ({pod.status})" for pod in remaining)
        waited = (clock() - event.started_at).total_seconds()
        if waited >= settings.pods_gone_timeout_seconds:
            raise PollTimeout(
                f"{len(remaining)} pod(s) of {where} still exist {waited:.0f} s after their deletion: {listed}"
            )
        raise PodsNotYetGone(f"{len(remaining)} pod(s) of {where} not gone yet: {listed}")
    return PodsGone(namespace=request.namespace, name=request.app)
