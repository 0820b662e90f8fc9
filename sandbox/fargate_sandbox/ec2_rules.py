"""EC2's Describe filters, checked by name as EC2 checks them (moto matches a filter name in any case).

EC2 accepts only the filter names its API reference lists for the operation, written exactly so, plus ``tag:<key>``;
any other name is answered with ``InvalidParameterValue`` "The filter '<name>' is invalid" (the message EC2 sends,
quoted in aws/aws-cli#4013). The names are read from botocore's EC2 model: its documentation of each operation's
``Filters`` member is the API reference's list.
"""

from __future__ import annotations

import re
from functools import cache

from fargate_sandbox.aws_protocol import AwsError, AwsRequest, service_model
from fargate_sandbox.iam_requests import parameters

_LISTED_NAME = re.compile(r"<li>\s*<p>\s*<code>([^<]+)</code>")
_FILTER_NAME_KEY = re.compile(r"^Filter\.(\d+)\.Name$")
_TAG = "tag"  # listed as "<code>tag</code>:&lt;key&gt;": any tag:<key>


@cache
def filter_names(operation: str) -> frozenset[str]:
    """The filter names the API reference lists for ``operation``; empty when it takes no ``Filters`` or is not
    EC2's (the request is then left to moto)."""
    model = service_model("ec2")
    if operation not in model.operation_names:
        return frozenset()
    filters = model.operation_model(operation).input_shape.members.get("Filters")
    return frozenset(_LISTED_NAME.findall(filters.documentation)) if filters is not None else frozenset()


def refused_filter(request: AwsRequest) -> AwsError | None:
    """EC2's answer to the first filter it does not know, or None when every filter name is listed."""
    listed = filter_names(request.operation or "")
    if not listed:
        return None
    named = sorted(
        (int(match[1]), str(value))
        for key, value in parameters(request).items()
        if (match := _FILTER_NAME_KEY.match(key))
    )
    for _, name in named:
        tag = name.startswith(f"{_TAG}:") and _TAG in listed
        if name not in listed and not tag:
            return AwsError("InvalidParameterValue", f"The filter '{name}' is invalid")
    return None
