"""Settings of the Kubernetes steps, read once from the environment.

The polling backoff and attempt limit are the shared ones of :class:`fargate_app.config.Settings`; only the rollout
grace period is specific to Kubernetes.
"""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

# Fargate needs about a minute to start a micro-VM; an image pull from a cold cache adds more. A pod still Pending
# (FailedScheduling) or failing its image pull after this long is reported instead of waited for.
DEFAULT_ROLLOUT_GRACE_SECONDS = 120


class KubeSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    rollout_grace_seconds: int = Field(default=DEFAULT_ROLLOUT_GRACE_SECONDS, ge=0, alias="ROLLOUT_GRACE_SECONDS")


@lru_cache(maxsize=1)
def get_kube_settings() -> KubeSettings:
    return KubeSettings.model_validate(dict(os.environ))
