"""The Lambda environment as one validated model, read once per process (house-style: env vars as a model)."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

MANAGED_BY = "fargate-app-provisioner"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    region: str = Field(alias="AWS_REGION", min_length=1)
    account_id: str = Field(alias="ACCOUNT_ID", pattern=r"^[0-9]{12}$")
    partition: str = Field(default="aws", alias="AWS_PARTITION")
    # Names and tags that mark what this project created and owns.
    managed_by: str = Field(default=MANAGED_BY, alias="MANAGED_BY_TAG")
    pod_execution_role_prefix: str = Field(default="FargateAppPodExecution", alias="POD_EXECUTION_ROLE_PREFIX")
    profile_prefix: str = Field(default="fargate-app", alias="FARGATE_PROFILE_PREFIX")
    # Polling of the rollout and of the pods going away: capped exponential backoff between checks (Wait states).
    poll_initial_seconds: int = Field(default=5, ge=1, alias="POLL_INITIAL_SECONDS")
    poll_max_seconds: int = Field(default=30, ge=1, alias="POLL_MAX_SECONDS")
    poll_max_attempts: int = Field(default=60, ge=1, alias="POLL_MAX_ATTEMPTS")
    # A Fargate profile CREATING or DELETING for longer than this is stuck: PollTimeout. The state machines' Retry
    # paces the checks (statemachine/*.asl.json); EKS typically takes from half a minute to a few minutes.
    profile_wait_timeout_seconds: int = Field(default=1200, ge=1, alias="PROFILE_WAIT_TIMEOUT_SECONDS")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the process environment; cached, because Lambda's environment does not change."""
    return Settings.model_validate(dict(os.environ))
