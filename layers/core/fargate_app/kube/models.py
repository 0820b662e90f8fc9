"""Inputs and outputs of the Kubernetes steps (the state machine contract; JSON is camelCase, docs/design.md §3)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from fargate_app.models import RequestEvent, StepModel


class CachedImage(StepModel):
    """The WarmImageCache result; only the digest-pinned reference matters here."""

    model_config = ConfigDict(extra="ignore")
    cached: str = Field(min_length=1, max_length=1024)


class ApplyAppEvent(RequestEvent):
    image: CachedImage
    execution_arn: str = Field(min_length=1, max_length=2048)
    caller: str = Field(default="console", min_length=1, max_length=2048)
    fargate_profile_name: str | None = None  # the profile EnsureFargateProfile chose: the pods name it in a label


class KubeObjectRef(StepModel):
    kind: str
    name: str
    namespace: str | None = None


class ExposedIngress(StepModel):
    """The ALB Ingress the AWS Load Balancer Controller reconciles; its address appears on the Ingress status."""

    namespace: str
    name: str
    ingress_class_name: str = "alb"
    scheme: str
    path: str
    port: int


class AppliedApp(StepModel):
    namespace: str
    name: str
    objects: list[KubeObjectRef]
    namespace_created: bool
    applied: bool = True
    # The Ingress/Service an earlier revision had and this one does not: deleted.
    pruned: list[KubeObjectRef] = Field(default_factory=list)
    # Another field manager (an autoscaler, ``kubectl scale``) owns spec.replicas: the request's count was not set.
    replicas_managed_by: str | None = None
    ingress: ExposedIngress | None = None
    # When the objects were applied: CheckRollout's grace period and timeout count from here.
    applied_at: datetime


class CheckRolloutEvent(RequestEvent):
    """One check of the rollout; the state's Retry repeats it with the same input until the pods run."""

    started_at: datetime


class DeploymentProgress(StepModel):
    namespace: str
    name: str
    replicas: int
    ready_replicas: int
    updated_replicas: int = 0
    available_replicas: int = 0


class PodSummary(StepModel):
    """One row of ``kubectl get pods -o wide``."""

    name: str
    ready: str
    status: str
    phase: str
    restarts: int = 0
    ip: str | None = None
    node: str | None = None
    message: str | None = None


class RolloutStatus(StepModel):
    """The rollout once every pod runs on a Fargate node (a check that finds it not ready raises instead)."""

    deployment: DeploymentProgress
    pods: list[PodSummary]
    nodes: list[str]


class DeletedApp(StepModel):
    deleted: list[KubeObjectRef]
    already_gone: list[KubeObjectRef]
    # When the deletes were sent: CheckPodsGone's timeout counts from here.
    deleted_at: datetime


class CheckPodsGoneEvent(RequestEvent):
    """One check after DeleteApp; the state's Retry repeats it until the pods are gone."""

    started_at: datetime


class PodsGone(StepModel):
    namespace: str
    name: str
