"""The one boundary between the AWS SDK and the package: ``aws_errors``."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from fargate_app.aws.errors import aws_errors, error_code, error_message, translate
from fargate_app.errors import (
    MAX_BODY_IN_MESSAGE,
    AccessDenied,
    AwsThrottled,
    ClusterNotFound,
    PermanentError,
    RoleConflict,
    truncate,
)


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


@pytest.mark.parametrize(
    "code",
    [
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ConcurrentModification",
        "ServiceUnavailable",
        "InternalFailure",
    ],
)
def test_throttling_and_transient_codes_are_retried_naming_the_code(code: str) -> None:
    with pytest.raises(AwsThrottled) as caught, aws_errors("create role r"):
        raise refused(code, "try later")
    assert str(caught.value) == f"create role r: AWS answered {code} after retries; the step will be retried"


@pytest.mark.parametrize("code", ["AccessDenied", "AccessDeniedException", "UnauthorizedOperation"])
def test_every_protocols_access_denied_says_where_to_grant(code: str) -> None:
    iam_says = (
        "User: arn:aws:sts::111122223333:assumed-role/fn/x is not authorized to perform: eks:CreateFargateProfile"
    )
    with pytest.raises(AccessDenied) as caught, aws_errors("create Fargate profile p"):
        raise refused(code, iam_says)
    assert (
        str(caught.value) == f"create Fargate profile p: {iam_says}; grant it to the function's role in template.yaml"
    )


def test_any_other_code_is_permanent_with_aws_words() -> None:
    with pytest.raises(PermanentError) as caught, aws_errors("delete role r"):
        raise refused("DeleteConflict", "Cannot delete entity, must detach all policies first.")
    assert type(caught.value) is PermanentError
    assert str(caught.value) == "delete role r: DeleteConflict: Cannot delete entity, must detach all policies first."


def test_an_unreachable_endpoint_is_retried_naming_the_failure() -> None:
    with pytest.raises(AwsThrottled) as caught, aws_errors("list rules"):
        raise EndpointConnectionError(endpoint_url="https://ecr.us-west-2.amazonaws.com")
    assert str(caught.value) == "list rules: the AWS endpoint did not answer (EndpointConnectionError); will retry"


def test_another_sdk_failure_is_permanent_with_its_text() -> None:
    with pytest.raises(PermanentError) as caught, aws_errors("sign the request"):
        raise NoCredentialsError()
    assert str(caught.value) == "sign the request: Unable to locate credentials"


def test_a_refusal_without_an_error_document_has_no_code_and_no_message() -> None:
    # botocore keeps whatever the response had: a 5xx whose body it could not parse may carry no Error at all
    bare = ClientError({"ResponseMetadata": {"HTTPStatusCode": 502}}, "AnyOperation")
    assert (error_code(bare), error_message(bare)) == ("", "")


def test_what_is_no_sdk_error_is_a_bug_that_surfaces() -> None:
    with pytest.raises(TypeError, match=r"^not an SDK error: ValueError$"):
        translate(ValueError("a bug"), "delete role r")


@pytest.mark.parametrize(
    ("text", "shortened"),
    [
        (None, ""),
        (b"caf\xc3\xa9 \xff", "café \N{REPLACEMENT CHARACTER}"),  # bytes decoded, what is not UTF-8 replaced
        ("a\n  b\tc", "a b c"),  # whitespace runs become one space
        ("x" * MAX_BODY_IN_MESSAGE, "x" * MAX_BODY_IN_MESSAGE),  # exactly the limit: kept whole
        ("x" * (MAX_BODY_IN_MESSAGE + 1), "x" * (MAX_BODY_IN_MESSAGE - 1) + "…"),  # one over: cut, still the limit
    ],
)
def test_messages_quote_bodies_shortened_to_the_limit(text: str | bytes | None, shortened: str) -> None:
    assert truncate(text) == shortened
