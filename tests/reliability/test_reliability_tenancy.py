"""Who may deploy where: a team's IAM policy (docs/api-access.md, applied verbatim) scopes it to its namespace.

The API is reached as in AWS: API Gateway's AWS_IAM authorization (the sandbox's ``ApiAuthorizer``: SigV4, then the
caller's identity policies for ``execute-api:Invoke`` on the method ARN) in front of the real API function. The team
is a role with the documented policy, assumed through the sandbox's STS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from reliability_support import ROOT, inventory, provision_executions, unique

from fargate_sandbox.api_authorization import ApiAuthorizer
from fargate_sandbox.api_gateway import API_ID, STAGE, GatewayResponse, RestProxyGateway, Signer
from fargate_sandbox.sandbox import Sandbox
from fargate_sandbox.seeds import ACCOUNT_ID, REGION
from fargate_sandbox.workflows import Workflows

DOC = ROOT / "docs" / "api-access.md"
HOST = f"{API_ID}.execute-api.{REGION}.amazonaws.com"
IMAGE = "public.ecr.aws/nginx/nginx:stable"
pytestmark = pytest.mark.xdist_group("reliability_tenancy")


def documented_team_policy() -> dict[str, Any]:
    """The first JSON block of docs/api-access.md, its placeholders filled for the sandbox's API."""
    block = re.search(r"```json\n(.*?)\n```", DOC.read_text(), re.DOTALL)
    assert block, "docs/api-access.md lost its team policy"
    text = block[1].replace("<region>", REGION).replace("<account>", ACCOUNT_ID).replace("<api-id>", API_ID)
    policy: dict[str, Any] = json.loads(text.replace("/v1/", f"/{STAGE}/"))
    return policy


@dataclass(frozen=True)
class Team:
    signer: Signer
    arn: str  # the session ARN API Gateway reports as userArn


@pytest.fixture(scope="module")
def api(sandbox: Sandbox, workflows: Workflows) -> RestProxyGateway:
    function = workflows.template.functions["ApiFunction"].name
    lambda_client = sandbox.boto3_client("lambda")

    def invoke(event: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        answer = lambda_client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload = json.loads(answer["Payload"].read() or b"null")
        return (None, "Error") if answer.get("FunctionError") else (payload, None)

    authorizer = ApiAuthorizer(sandbox.iam, API_ID, STAGE)
    admin = Signer(lambda: sandbox.credentials, REGION, HOST)
    return RestProxyGateway(invoke, authorize=authorizer.authorize, signer=admin)


@pytest.fixture(scope="module")
def team_a(sandbox: Sandbox) -> Iterator[Team]:
    iam, sts = sandbox.boto3_client("iam"), sandbox.boto3_client("sts")
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName="team-a-deployer", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    iam.put_role_policy(
        RoleName="team-a-deployer", PolicyName="team-a-api", PolicyDocument=json.dumps(documented_team_policy())
    )
    assumed = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="alice")
    keys = assumed["Credentials"]
    credentials = (keys["AccessKeyId"], keys["SecretAccessKey"], keys["SessionToken"])
    yield Team(Signer(lambda: credentials, REGION, HOST), assumed["AssumedRoleUser"]["Arn"])
    iam.delete_role_policy(RoleName="team-a-deployer", PolicyName="team-a-api")
    iam.delete_role(RoleName="team-a-deployer")


def body(namespace: str, app: str, cluster: str = "blog") -> dict[str, Any]:
    return {"cluster": cluster, "namespace": namespace, "app": app, "image": IMAGE}


def wait_for(api: RestProxyGateway, path: str, kind: str, timeout: float = 90) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        answer = api.call("GET", path).json()
        if answer.get("kind") == kind and answer.get("status") != "RUNNING":
            return answer  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, answer
        time.sleep(0.3)


def test_a_team_deploys_to_its_namespace_and_is_recorded_as_the_caller(
    sandbox: Sandbox, workflows: Workflows, api: RestProxyGateway, team_a: Team
) -> None:
    app = unique("web")
    path = f"/apps/blog/team-a/{app}"
    # When team A PUTs its app on its own path (no names in the body: the path carries them)
    answer = api.call("PUT", path, {"image": IMAGE}, signer=team_a.signer)
    # Then the provision runs, and its result, the status and every object name team A's principal as the caller
    assert answer.status == 202, answer.json()
    done = wait_for(api, path, "provision")
    assert done["status"] == "SUCCEEDED", done["error"]
    assert done["result"]["caller"] == done["caller"] == team_a.arn
    assert sandbox.kubernetes is not None
    deployment = next(d for d in sandbox.kubernetes.objects("Deployment", "team-a") if d["metadata"]["name"] == app)
    assert deployment["metadata"]["annotations"]["fargate-app.io/caller"] == team_a.arn
    # And team A may read it and tear it down
    assert api.call("GET", path, signer=team_a.signer).status == 200
    assert api.call("DELETE", path, signer=team_a.signer).status == 202
    torn = wait_for(api, path, "teardown")
    assert (torn["status"], torn["caller"]) == ("SUCCEEDED", team_a.arn), torn
    assert torn["result"]["leftovers"] == []


def test_a_console_start_is_recorded_as_console(workflows: Workflows) -> None:
    arn = workflows.start("ProvisionStateMachine", body("console-started", unique("web")))
    outcome = workflows.wait(arn, timeout_s=90)
    assert outcome["status"] == "SUCCEEDED", outcome.get("cause")
    assert json.loads(outcome["output"])["caller"] == "console"


# (case, who, method, path, body, expected status, words of the answer)
CROSS_TENANT: list[tuple[str, str, str, str, Any, int, str]] = [
    ("other namespace (PUT)", "team-a", "PUT", "/apps/blog/team-b/web", {"image": IMAGE}, 403, "not authorized"),
    ("other namespace (GET)", "team-a", "GET", "/apps/blog/team-b/web", None, 403, "not authorized"),
    ("other namespace (DELETE)", "team-a", "DELETE", "/apps/blog/team-b/web", None, 403, "not authorized"),
    ("namespace sharing the prefix", "team-a", "PUT", "/apps/blog/team-ab/web", {"image": IMAGE}, 403, "not authorized"),
    ("other cluster", "team-a", "PUT", "/apps/shop/team-a/web", {"image": IMAGE}, 403, "not authorized"),
    ("POST without the admin grant", "team-a", "POST", "/apps", body("team-a", "web"), 403, "not authorized"),
    ("POST without the admin grant: the inventory", "team-a", "GET", "/apps?cluster=blog&namespace=team-a", None, 403, "not authorized"),
    ("protected namespace (team)", "team-a", "PUT", "/apps/blog/kube-system/web", {"image": IMAGE}, 403, "not authorized"),
    ("protected namespace (admin PUT)", "admin", "PUT", "/apps/blog/kube-system/web", {"image": IMAGE}, 400, "protected namespace"),
    ("protected namespace (admin POST)", "admin", "POST", "/apps", body("kube-node-lease", "web"), 400, "protected namespace"),
    ("body names another namespace", "team-a", "PUT", "/apps/blog/team-a/web", body("team-b", "web"), 400, "must equal the path's namespace"),
    ("body names another cluster", "team-a", "PUT", "/apps/blog/team-a/web", body("team-a", "web", "shop"), 400, "must equal the path's cluster"),
    ("unsigned", "nobody", "PUT", "/apps/blog/team-a/web", {"image": IMAGE}, 403, "Missing Authentication Token"),
    ("wrong secret", "forger", "PUT", "/apps/blog/team-a/web", {"image": IMAGE}, 403, "signature we calculated does not match"),
]  # fmt: skip


def _send(api: RestProxyGateway, team_a: Team, who: str, method: str, path: str, document: Any) -> GatewayResponse:
    if who == "nobody":
        raw = json.dumps(document).encode() if document is not None else b""
        return api.handle(method, path, raw, {"Content-Type": "application/json", "Host": HOST})
    if who == "forger":
        key = team_a.signer.credentials()[0]
        return api.call(method, path, document, signer=Signer(lambda: (key, "not-the-secret"), REGION, HOST))
    return api.call(method, path, document, signer=team_a.signer if who == "team-a" else None)


def test_cross_tenant_attempts_are_refused_and_create_nothing(
    sandbox: Sandbox, workflows: Workflows, api: RestProxyGateway, team_a: Team, figures: Any
) -> None:
    # Given the account's resources and executions before
    before, executions_before = inventory(sandbox), provision_executions(workflows)
    observed = []
    for case, who, method, path, document, expected, words in CROSS_TENANT:
        # When the attempt is made
        answer = _send(api, team_a, who, method, path, document)
        text = json.dumps(answer.json())
        observed.append((case, expected, words, answer.status, text))
        figures.add(
            "cross_tenant",
            case=case,
            caller=who,
            request=f"{method} {path}",
            status=answer.status,
            refused=answer.status in (400, 403) and answer.status == expected and words in text,
            answer=text[:160],
        )
    created = {kind: names for kind, names in inventory(sandbox).items() if names != before.get(kind)}
    started = provision_executions(workflows) != executions_before
    figures.add("cross_tenant_effects", created=sorted(created), started=started)
    # Then each is refused with API Gateway's 403 (IAM) or the API's 400 (the rule), naming why
    for case, expected, words, status, text in observed:
        assert (status, words in text) == (expected, True), (case, status, text)
    # And nothing was created or started
    assert (created, started) == ({}, False)
