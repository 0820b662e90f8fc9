"""The error contract between the step functions and the state machines.

Class names are used verbatim in ASL ``ErrorEquals`` (Lambda reports an unhandled exception as
``errorType`` = the class name), so renaming one is a breaking change for ``statemachine/*.asl.json``.
Messages name the resource and say what to do; they never carry tokens, secrets or whole response bodies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_BODY_IN_MESSAGE = 300


def truncate(text: str | bytes | None, limit: int = MAX_BODY_IN_MESSAGE) -> str:
    """Shorten a response body so that an error message stays readable and bounded."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FargateAppError(Exception):
    """Base of every error this package raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableError(FargateAppError):
    """A transient condition: the state machine retries the step with backoff."""

    retryable = True


class PermanentError(FargateAppError):
    """Retrying will not help: the workflow compensates and fails."""


# --- retryable (docs/design.md §4) ---
class ProfileOperationInProgress(RetryableError):
    """EKS allows one Fargate profile CREATING or DELETING per cluster."""


class IamRoleNotYetPropagated(RetryableError):
    """A new IAM role is not yet visible to the service that must assume it."""


class SharedResourceReleasing(RetryableError):
    """The last holder's release is deleting the shared role, profile or cache rule an app takes: it is taken (or
    made anew) once that is done."""


class AwsThrottled(RetryableError):
    """An AWS API throttled the call after the SDK's own retries."""


class RegistryUnavailable(RetryableError):
    """The registry (or its upstream) answered 429/5xx or did not answer."""


class KubernetesUnavailable(RetryableError):
    """The Kubernetes API answered 429/5xx or did not answer."""


class ProfileNotYetActive(RetryableError):
    """The Fargate profile is still CREATING: the state machine's Retry is the poll (one transition per check)."""


class ProfileNotYetDeleted(RetryableError):
    """The Fargate profile is still DELETING: the state machine's Retry is the poll."""


class RolloutNotYetReady(RetryableError):
    """The app's pods are not all Running on Fargate yet: the state machine's Retry is the poll."""


class PodsNotYetGone(RetryableError):
    """The app's pods (and their Fargate nodes) still exist after DeleteApp: the state machine's Retry is the poll."""


# --- permanent (docs/design.md §4) ---
class Misconfigured(PermanentError):
    """The function's environment breaks a rule: a deployment fault, not the caller's."""


class InvalidRequest(PermanentError):
    """The request breaks documented rules: ``problems`` maps each field path to the rule it breaks (the API's
    ``fields``, the CLI's lines); the message is ``field: rule; field: rule``."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{field}: {rule}" for field, rule in self.problems.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.problems,)

    @classmethod
    def of(cls, field: str, rule: str) -> InvalidRequest:
        return cls({field: rule})


class ClusterNotFound(PermanentError):
    pass


class ClusterNotActive(PermanentError):
    pass


class ClusterVersionUnsupported(PermanentError):
    """The cluster runs a Kubernetes version older than the APIs the app's objects use."""


class SubnetNotPrivate(PermanentError):
    pass


class SubnetNotFound(PermanentError):
    """A requested subnet does not exist, or is not in the cluster's VPC."""


class ProfileCreateFailed(PermanentError):
    pass


class AppBusy(PermanentError):
    """Another execution of the app (a provision or its teardown) is running: a start from the console or an event
    would race it. The API answers 409 before it starts one."""


class ProfileQuotaExceeded(PermanentError):
    """The app needs a new Fargate profile and the cluster has EKS's 10 already."""


class CacheRuleConflict(PermanentError):
    pass


class UpstreamCredentialInvalid(PermanentError):
    pass


class UpstreamAuthFailed(PermanentError):
    pass


class ImageNotFound(PermanentError):
    pass


class ImageDigestMismatch(PermanentError):
    """The tag of a ``name:tag@digest`` reference no longer resolves to that digest."""


class CacheRuleMissing(PermanentError):
    """The image needs a pull-through-cache rule this stack cannot create (another account's ECR registry)."""


class PlatformNotAvailable(PermanentError):
    pass


class ManifestInvalid(PermanentError):
    pass


class KubernetesConflict(PermanentError):
    pass


class KubernetesForbidden(PermanentError):
    pass


class RolloutFailed(PermanentError):
    pass


class PollTimeout(PermanentError):
    pass


class RoleConflict(PermanentError):
    """A role of that name exists with another trust policy and is not owned by this project."""


class AccessDenied(PermanentError):
    """IAM refused an AWS call: the function's role lacks a grant. The message names the action and the resource;
    retrying cannot help, the stack's IAM must change."""


def all_error_names() -> set[str]:
    """Every class name the state machines may match in ``ErrorEquals``."""
    names: set[str] = set()
    pending: list[type[FargateAppError]] = [FargateAppError]
    while pending:
        cls = pending.pop()
        names.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return names
