"""The execution ARN as a tag value (fargate_app/aws/tags.py): IAM and EKS take at most 256 characters of letters,
digits, spaces and ``_.:/=+-@`` (IAM API reference, Tag; EKS API reference, TagResource)."""

from __future__ import annotations

from fargate_app.aws.tags import execution_tag

ARN = "arn:aws:states:us-west-2:111122223333:execution:fargate-app-provision:"


def test_characters_a_tag_value_may_not_hold_become_underscores() -> None:
    assert execution_tag(ARN + "blog-web!(1)'x") == ARN + "blog-web__1__x"


def test_a_long_arn_is_cut_to_the_256_characters_a_tag_value_may_have() -> None:
    long = ARN + "n" * 300
    assert execution_tag(long) == long[:256]
    assert len(execution_tag(long)) == 256
