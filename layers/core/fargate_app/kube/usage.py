"""Which managed apps a Fargate profile still schedules: teardown and compensation delete a profile only when none."""

from __future__ import annotations

from typing import Any

from fargate_app.aws.eks import profile_matches
from fargate_app.config import MANAGED_BY, Settings
from fargate_app.kube.client import DEFAULT_APIS, KubeApiCache
from fargate_app.kube.steps import as_dict, call_api
from fargate_app.models import MANAGED_BY_LABEL, ProvisionRequest


def other_apps_on_profile(
    settings: Settings, request: ProvisionRequest, profile: dict[str, Any], apis: KubeApiCache = DEFAULT_APIS
) -> list[str]:
    """``namespace/name`` of every Deployment this provisioner manages, other than the request's app, whose pods the
    profile's selectors match.

    Raises:
        KubernetesForbidden, KubernetesUnavailable: as for every API call.
    """
    api = apis.get(request.cluster, settings.region)
    listed = call_api(
        "list managed deployments",
        api.apps.list_deployment_for_all_namespaces,
        label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}",
    )
    users = []
    for deployment in as_dict(api, listed).get("items", []):
        metadata = deployment["metadata"]
        if (metadata["namespace"], metadata["name"]) == (request.namespace, request.app):
            continue
        labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        if profile_matches(profile, metadata["namespace"], labels):
            users.append(f"{metadata['namespace']}/{metadata['name']}")
    return sorted(users)
