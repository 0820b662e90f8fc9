"""The one boundary between the AWS SDK and the package: botocore errors become the package's named errors."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from fargate_app.errors import AccessDenied, AwsThrottled, FargateAppError, PermanentError, truncate

# botocore's standard retry mode treats these codes as throttling (botocore/retries/standard.py).
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "ConcurrentModification",  # IAM: another request changed the same role (tags, policies) at the same time
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServerException",
    }
)
# How each protocol says IAM refused the call (IAM: AccessDenied; JSON/REST services: AccessDeniedException; EC2).
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    return truncate(str(exc.response.get("Error", {}).get("Message", "")))


def translate(exc: Exception, action: str) -> FargateAppError:
    """The named error for an SDK failure the caller did not handle itself.

    ``action`` says what was being done ("create Fargate profile demo in cluster blog"); it leads the message.
    """
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in THROTTLING_CODES or code in TRANSIENT_CODES:
            return AwsThrottled(f"{action}: AWS answered {code} after retries; the step will be retried")
        if code in ACCESS_DENIED_CODES:
            # The message is IAM's own: it names the caller's role, the action and the resource.
            return AccessDenied(f"{action}: {error_message(exc)}; grant it to the function's role in template.yaml")
        return PermanentError(f"{action}: {code}: {error_message(exc)}")
    if isinstance(exc, (ConnectionError, ReadTimeoutError)):
        return AwsThrottled(f"{action}: the AWS endpoint did not answer ({type(exc).__name__}); will retry")
    if isinstance(exc, BotoCoreError):
        return PermanentError(f"{action}: {truncate(str(exc))}")
    raise TypeError(f"not an SDK error: {type(exc).__name__}")


@dataclass
class Refusal:
    """What ``aws_errors`` swallowed: AWS's error code and message (empty while nothing was swallowed)."""

    code: str = ""
    message: str = ""


@contextmanager
def aws_errors(
    action: str,
    *,
    absent: Collection[str] = (),
    raises: Mapping[str, Callable[[str], FargateAppError]] | None = None,
) -> Iterator[Refusal]:
    """Inside the block, an SDK failure comes out as the package's named error (``translate``, led by ``action``).

    A ClientError whose code is in ``absent`` is an answer, not a failure ("no such role"): the block ends there, as
    with ``contextlib.suppress``, and the yielded ``Refusal`` holds its code and message. One whose code is in
    ``raises`` becomes the error its factory makes of AWS's message. The package's own errors pass through.
    """
    refusal = Refusal()
    try:
        yield refusal
    except ClientError as exc:
        code = error_code(exc)
        if code in absent:
            refusal.code, refusal.message = code, error_message(exc)
            return
        if raises is not None and code in raises:
            raise raises[code](error_message(exc)) from exc
        raise translate(exc, action) from exc
    except BotoCoreError as exc:
        raise translate(exc, action) from exc
