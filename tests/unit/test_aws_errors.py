"""The one boundary between the AWS SDK and the package: ``aws_errors``."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from fargate_app.aws.errors import aws_errors
from fargate_app.errors import AccessDenied, AwsThrottled, ClusterNotFound, PermanentError, RoleConflict


def refused(code: str, message: str = "AWS says no") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "AnyOperation")


def test_an_absent_code_ends_the_block_and_is_recorded() -> None:
    # Given a call refused with a code the caller expects ("no such thing" is an answer)
    reached_after_the_call = False
    with aws_errors("read IAM role r", absent={"NoSuchEntity"}) as missing:
        raise refused("NoSuchEntity", "The role with name r cannot be found.")
        reached_after_the_call = True  # type: ignore[unreachable]
    # Then the block ends there, no error escapes, and the refusal says what AWS answered
    assert not reached_after_the_call
    assert (missing.code, missing.message) == ("NoSuchEntity", "The role with name r cannot be found.")


def test_nothing_is_recorded_when_the_call_succeeds() -> None:
    with aws_errors("read IAM role r", absent={"NoSuchEntity"}) as missing:
        answer = {"Role": {"RoleName": "r"}}
    assert answer["Role"]["RoleName"] == "r"
    assert missing.code == "" and missing.message == ""


def test_a_mapped_code_becomes_its_named_error_made_from_aws_s_message() -> None:
    not_found = {"ResourceNotFoundException": lambda message: ClusterNotFound(f"cluster blog: {message}")}
    expected = r"^cluster blog: No cluster found for name: blog\.$"
    with pytest.raises(ClusterNotFound, match=expected) as caught, aws_errors("describe cluster", raises=not_found):
        raise refused("ResourceNotFoundException", "No cluster found for name: blog.")
    assert isinstance(caught.value.__cause__, ClientError)


@pytest.mark.parametrize(
    ("failure", "expected", "message"),
    [
        (
            refused("ThrottlingException", "Rate exceeded"),
            AwsThrottled,
            "delete role r: AWS answered ThrottlingException",
        ),
        (refused("AccessDenied", "not authorized to perform iam:DeleteRole"), AccessDenied, "iam:DeleteRole"),
        (refused("ValidationError", "bad name"), PermanentError, "delete role r: ValidationError: bad name"),
        (EndpointConnectionError(endpoint_url="https://iam.amazonaws.com"), AwsThrottled, "did not answer"),
    ],
)
def test_any_other_sdk_failure_is_translated_and_led_by_the_action(
    failure: Exception, expected: type[Exception], message: str
) -> None:
    # Given a code the caller did not name (and one it named as absent, which this is not)
    with pytest.raises(expected) as caught, aws_errors("delete role r", absent={"NoSuchEntity"}):
        raise failure
    # Then it is the package's named error for it, its message led by the action
    assert type(caught.value) is expected
    assert message in str(caught.value)


def test_the_package_s_own_errors_pass_through_untouched() -> None:
    conflict = RoleConflict("IAM role r exists with another trust policy")
    with pytest.raises(RoleConflict) as caught, aws_errors("read IAM role r", absent={"NoSuchEntity"}):
        raise conflict
    assert caught.value is conflict
