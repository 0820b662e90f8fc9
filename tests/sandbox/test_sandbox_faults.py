"""Fault hooks fire exactly N times, with each service's own throttling shape, also under concurrency; a failure
inside moto reaches the caller as AWS reports a failure inside a service."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError
from sandbox_test_support import unique

from fargate_sandbox.sandbox import Sandbox


@pytest.mark.parametrize(
    ("api", "call", "code"),
    [
        ("iam:GetRole", lambda s: s.boto3_client("iam").get_role(RoleName="sandbox-eks-cluster-role"), "Throttling"),
        ("eks:DescribeCluster", lambda s: s.boto3_client("eks").describe_cluster(name="blog"), "ThrottlingException"),
        (
            "ecr:DescribePullThroughCacheRules",
            lambda s: s.boto3_client("ecr").describe_pull_through_cache_rules(),
            "ThrottlingException",
        ),
        ("ec2:DescribeVpcs", lambda s: s.boto3_client("ec2").describe_vpcs(), "RequestLimitExceeded"),
    ],
)
def test_throttle_fires_exactly_n_times(sandbox: Sandbox, api: str, call: object, code: str) -> None:
    # Given a throttle armed for 2 calls
    sandbox.faults.throttle_aws(api, 2)
    # When the API is called 4 times (one attempt each)
    outcomes = []
    for _ in range(4):
        try:
            call(sandbox)  # type: ignore[operator]
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])
    # Then the first two are throttled with the service's code, the rest succeed
    assert outcomes == [code, code, "ok", "ok"]


def test_given_error_is_returned_and_counted_under_concurrency(sandbox: Sandbox) -> None:
    # Given an error armed for 3 calls
    sandbox.faults.fail_aws("sts:GetCallerIdentity", 3, "InternalFailure", "injected", status=500)
    sts = sandbox.boto3_client("sts")

    def call(_: int) -> str:
        try:
            return str(sts.get_caller_identity()["Account"])
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])

    # When 10 calls race
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(call, range(10)))
    # Then exactly 3 failed
    assert results.count("InternalFailure") == 3
    assert results.count("111122223333") == 7
    assert sandbox.faults.fired_aws("sts:GetCallerIdentity") == 3


def test_moto_failing_inside_is_answered_as_internal_failure_with_a_request_id(sandbox: Sandbox) -> None:
    # Given a call moto cannot serve (DescribeExecution without its executionArn: moto raises TypeError)
    unchecked = Config(parameter_validation=False, retries={"total_max_attempts": 1})
    sfn = sandbox.boto3_client("stepfunctions", config=unchecked)

    # When it is made
    with pytest.raises(ClientError) as raised:
        sfn.describe_execution()

    # Then the answer is AWS's common InternalFailure (500) with a request id, as every AWS answer has one (Step
    # Functions' integrations put it in a failure's cause), not the server's HTML error page
    response = raised.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == ("InternalFailure", 500)
    assert response["ResponseMetadata"]["RequestId"]


def test_registry_path_answers_5xx_n_times(sandbox: Sandbox) -> None:
    # Given a registry fault on manifests of a path, armed twice
    token = sandbox.boto3_client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    headers = {"Authorization": f"Basic {token}"}
    prefix = unique("flt")
    sandbox.boto3_client("ecr").create_pull_through_cache_rule(
        ecrRepositoryPrefix=prefix, upstreamRegistryUrl="public.ecr.aws"
    )
    sandbox.faults.fail_registry(f"^/v2/{prefix}/.*/manifests/", 2, status=503)
    # When the manifest is requested three times
    http = urllib3.PoolManager(retries=False)
    statuses = [
        http.request("GET", f"{sandbox.registry_url}/v2/{prefix}/nginx/nginx/manifests/stable", headers=headers).status
        for _ in range(3)
    ]
    # Then two 503s, then the real answer
    assert statuses == [503, 503, 200]


def test_registry_hang_drops_the_request_without_answer(sandbox: Sandbox) -> None:
    # Given a hang armed once for a short time
    sandbox.faults.hang_registry("^/v2/$", 1, seconds=0.2)
    http = urllib3.PoolManager(retries=False)
    # When /v2/ is requested (with a valid token)
    token = sandbox.boto3_client("ecr").get_authorization_token()["authorizationData"][0]["authorizationToken"]
    headers = {"Authorization": f"Basic {token}"}
    # Then the first request gets no answer at all and the second is served
    with pytest.raises(urllib3.exceptions.ProtocolError):
        http.request("GET", f"{sandbox.registry_url}/v2/", headers=headers)
    assert http.request("GET", f"{sandbox.registry_url}/v2/", headers=headers).status == 200


def test_kubernetes_hook_counts_per_method_and_path(sandbox: Sandbox) -> None:
    # Given a 409 armed once for PATCH on deployments
    sandbox.faults.fail_kubernetes(r"/apis/apps/v1/namespaces/[^/]+/deployments", 1, status=409, method="PATCH")
    # Then the emulator's hook gets it once for a matching request and never for another method
    path = "/apis/apps/v1/namespaces/fargate/deployments/demo-app"
    assert sandbox.faults.take_kubernetes("GET", path) is None
    fault = sandbox.faults.take_kubernetes("PATCH", path)
    assert fault is not None and fault.status == 409
    assert sandbox.faults.take_kubernetes("PATCH", path) is None
