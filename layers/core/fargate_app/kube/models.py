"""Inputs and outputs of the Kubernetes steps (the state machine contract; JSON is camelCase, design.md §3)."""

from __future__ import annotations

from datetime import datetime

from pydantic import ConfigDict, Field

from fargate_app.models import ApiModel, RequestEvent


class CachedImage(ApiModel):
    """The WarmImageCache result; only the digest-pinned reference matters here."""

    model_config = ConfigDict(extra="ignore")
    cached: str = Field(min_length=1, max_length=1024)


class ApplyAppEvent(RequestEvent):
    image: CachedImage
    execution_arn: str = Field(min_length=1, max_length=2048)


class KubeObjectRef(ApiModel):
    kind: str
    name: str
    namespace: str | None = None


class ExposedIngress(ApiModel):
    """The ALB Ingress the AWS Load Balancer Controller reconciles; its address appears on the Ingress status."""

    namespace: str
    name: str
    ingress_class_name: str = "alb"
    scheme: str
    path: str
    port: int


class AppliedApp(ApiModel):
    namespace: str
    name: str
    objects: list[KubeObjectRef]
    namespace_created: bool
    applied: bool = True
    ingress: ExposedIngress | None = None


class CheckRolloutEvent(RequestEvent):
    attempt: int = Field(default=0, ge=0)
    # When the rollout began (ISO 8601 or epoch seconds): the failure grace period never ends before it.
    started_at: datetime | None = None


class DeploymentProgress(ApiModel):
    namespace: str
    name: str
    replicas: int
    ready_replicas: int
    updated_replicas: int = 0
    available_replicas: int = 0


class PodSummary(ApiModel):
    """One row of ``kubectl get pods -o wide``."""

    name: str
    ready: str
    status: str
    phase: str
    restarts: int = 0
    ip: str | None = None
    node: str | None = None
    message: str | None = None


class RolloutStatus(ApiModel):
    deployment: DeploymentProgress
    pods: list[PodSummary]
    nodes: list[str]
    ready: bool
    attempt: int
    next_wait_seconds: int


class CheckPodsGoneEvent(RequestEvent):
    attempt: int = Field(default=0, ge=0)


class DeletedApp(ApiModel):
    deleted: list[KubeObjectRef]
    already_gone: list[KubeObjectRef]


class PodsGone(ApiModel):
    namespace: str
    name: str
    gone: bool
    remaining: int
    attempt: int
    next_wait_seconds: int
