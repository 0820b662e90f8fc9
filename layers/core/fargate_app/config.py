"""The Lambda environment as one validated model, read once per process (house-style: env vars as a model)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fargate_app.errors import Misconfigured

# What this project created and owns carries this value: AWS tag managed-by, Kubernetes label
# app.kubernetes.io/managed-by, the server-side-apply field manager. A constant, so that two deployments of the
# stack agree on what is theirs.
MANAGED_BY = "fargate-app-provisioner"
# Kubernetes' own namespaces (kubernetes.io, "Initial namespaces").
PROTECTED_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease")
STATE_MACHINE_ARN = r"^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    region: str = Field(alias="AWS_REGION", min_length=1)
    account_id: str = Field(alias="ACCOUNT_ID", pattern=r"^[0-9]{12}$")
    partition: str = Field(default="aws", alias="AWS_PARTITION")
    pod_execution_role_prefix: str = Field(default="FargateAppPodExecution", alias="POD_EXECUTION_ROLE_PREFIX")
    profile_prefix: str = Field(default="fargate-app", alias="FARGATE_PROFILE_PREFIX")
    # shared: one profile per (cluster, subnet set, pod execution role) selecting every managed pod in any namespace;
    # per-namespace: one per (namespace, labels), at most 10 per cluster (EKS's quota).
    profile_strategy: Literal["shared", "per-namespace"] = Field(default="shared", alias="FARGATE_PROFILE_STRATEGY")
    # The polls (CheckFargateProfile, CheckRollout, CheckPodsGone) are paced by their state's Retry
    # (statemachine/*.asl.json); each ends in PollTimeout once its wait has lasted this long.
    # A Fargate profile takes from half a minute to a few minutes to become ACTIVE or to go.
    profile_wait_timeout_seconds: int = Field(default=1200, ge=1, alias="PROFILE_WAIT_TIMEOUT_SECONDS")
    # Fargate starts a pod in about a minute (a micro-VM per pod, then the image pull).
    rollout_timeout_seconds: int = Field(default=900, ge=1, alias="ROLLOUT_TIMEOUT_SECONDS")
    # A deleted pod gets its terminationGracePeriodSeconds (30 s by default) before its containers are killed.
    pods_gone_timeout_seconds: int = Field(default=600, ge=1, alias="PODS_GONE_TIMEOUT_SECONDS")
    # A pod still Pending (FailedScheduling) or failing its image pull after this long is reported, not waited for:
    # Fargate needs about a minute to start a micro-VM, and an image pull from a cold cache adds more.
    rollout_grace_seconds: int = Field(default=120, ge=0, alias="ROLLOUT_GRACE_SECONDS")
    # The platforms a request may ask for: EKS Fargate runs linux/amd64 only (aws/containers-roadmap#1629).
    fargate_platforms: str = Field(
        default="linux/amd64", alias="FARGATE_PLATFORMS", pattern=r"^linux/[a-z0-9]+(,linux/[a-z0-9]+)*$"
    )

    # Namespaces no request may deploy into, whoever asks (shell-style patterns): the cluster's own.
    protected_namespaces_list: str = Field(
        default=",".join(PROTECTED_NAMESPACES),
        alias="PROTECTED_NAMESPACES",
        pattern=r"^[a-z0-9*?\[\]!-]*(,[a-z0-9*?\[\]!-]+)*$",
    )

    # The API function's alone (template.yaml gives them to it): the state machines it starts.
    provision_state_machine_arn: str | None = Field(
        default=None, alias="PROVISION_STATE_MACHINE_ARN", pattern=STATE_MACHINE_ARN
    )
    teardown_state_machine_arn: str | None = Field(
        default=None, alias="TEARDOWN_STATE_MACHINE_ARN", pattern=STATE_MACHINE_ARN
    )

    # The API function's: a provision that succeeded answers the same request again (a client's retry of its POST)
    # for this long after it ended; later, the same request runs again and re-applies the app's objects (someone
    # deleted or edited them by hand), as `kubectl apply` of an unchanged manifest would.
    replay_window_seconds: int = Field(default=300, ge=0, alias="REPLAY_WINDOW_SECONDS")

    # The app inventory (DynamoDB), read by ValidateRequest and the API function (template.yaml AppsTable).
    apps_table_name: str | None = Field(default=None, alias="APPS_TABLE_NAME", pattern=r"^[A-Za-z0-9_.-]{3,255}$")
    # Who holds each shared role, profile and cache rule (DynamoDB, template.yaml HoldersTable): the ensure steps
    # take, teardown and compensation release (fargate_app/holders.py).
    holders_table_name: str | None = Field(default=None, alias="HOLDERS_TABLE_NAME", pattern=r"^[A-Za-z0-9_.-]{3,255}$")

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self.fargate_platforms.split(","))

    @property
    def protected_namespaces(self) -> tuple[str, ...]:
        return tuple(p for p in self.protected_namespaces_list.split(",") if p)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the process environment; cached, because Lambda's environment does not change (a failure is
    not cached: a fixed environment is read by the next call).

    Raises:
        Misconfigured: a variable is missing or breaks its rule, named with the rule.
    """
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise Misconfigured(f"the function's environment is incomplete: {problems}") from None


def reset_settings() -> None:
    """Read the environment again at the next ``get_settings`` (tests that change it; the one reset)."""
    get_settings.cache_clear()
