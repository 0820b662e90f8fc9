"""What a Fargate profile still serves: teardown and compensation delete a profile only when nothing else uses it.

Deleting a profile deletes every pod it scheduled (EKS user guide, "Delete a Fargate profile"), managed or not, in
any namespace. So a profile is kept while
- any pod other than the app's own carries the profile's annotation ``eks.amazonaws.com/fargate-profile`` (EKS sets
  it when it places a pod): someone else's app (kubectl, Helm, another team) would be killed; and
- any other Deployment this provisioner manages has pods the profile would place (one being rolled out right now has
  no placed pod yet): its pod template's ``eks.amazonaws.com/fargate-profile`` label names the profile, or, without
  that label (per-namespace profiles, older apps), the profile's selectors match its pods.
"""

from __future__ import annotations

from typing import Any

from fargate_app.aws.eks import profile_matches
from fargate_app.config import MANAGED_BY, Settings
from fargate_app.kube.client import DEFAULT_APIS, KubeApiCache
from fargate_app.kube.steps import as_dict, call_api
from fargate_app.models import APP_NAME_LABEL, MANAGED_BY_LABEL, ProvisionRequest

FARGATE_PROFILE_ANNOTATION = "eks.amazonaws.com/fargate-profile"


def profile_users(
    settings: Settings, request: ProvisionRequest, profile: dict[str, Any], apis: KubeApiCache = DEFAULT_APIS
) -> list[str]:
    """What keeps ``profile`` (DescribeFargateProfile's shape), other than the request's app: ``deployment ns/name``
    for managed Deployments it selects, ``pod ns/name`` for pods it placed outside them.

    Raises:
        KubernetesForbidden, KubernetesUnavailable: as for every API call.
    """
    api = apis.get(request.cluster, settings.region)
    deployments = call_api(
        "list managed deployments",
        api.apps.list_deployment_for_all_namespaces,
        label_selector=f"{MANAGED_BY_LABEL}={MANAGED_BY}",
    )
    name = profile.get("fargateProfileName")
    apps: set[tuple[str, str]] = set()
    for deployment in as_dict(api, deployments).get("items", []):
        metadata = deployment["metadata"]
        labels = deployment["spec"]["template"]["metadata"].get("labels") or {}
        chosen = labels.get(FARGATE_PROFILE_ANNOTATION)  # the label that picks one of several matching profiles
        if chosen is not None and name:
            if chosen == name:
                apps.add((metadata["namespace"], metadata["name"]))
        elif profile.get("selectors") and profile_matches(profile, metadata["namespace"], labels):
            apps.add((metadata["namespace"], metadata["name"]))
    apps.discard((request.namespace, request.app))
    users = [f"deployment {namespace}/{app}" for namespace, app in sorted(apps)]
    if name:
        pods = call_api("list pods", api.core.list_pod_for_all_namespaces)
        for pod in as_dict(api, pods).get("items", []):
            metadata = pod["metadata"]
            if (metadata.get("annotations") or {}).get(FARGATE_PROFILE_ANNOTATION) != name:
                continue
            app = (metadata["namespace"], (metadata.get("labels") or {}).get(APP_NAME_LABEL, ""))
            if app == (request.namespace, request.app) or app in apps:
                continue  # the app's own pods go with it; a listed Deployment's pods are named by it
            users.append(f"pod {metadata['namespace']}/{metadata['name']}")
    return users
