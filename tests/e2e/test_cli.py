"""``fargate-app`` through its real entry point, as `make demo` runs it.

Each ``sandbox run`` is a subprocess with its own sandbox; the three runs below start together at the first test that
needs them (they share nothing), so the module costs about one run's time. The remote commands are checked against a
local server that verifies their SigV4 signatures with botocore.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from cli_support import EXAMPLES, Background, Finished, SigV4CheckingApi, cli_environment, run_cli

from fargate_sandbox.oci_images import multi_arch_sample

pytestmark = [pytest.mark.xdist_group("cli"), pytest.mark.slow, pytest.mark.registry]

RUN_TIMEOUT = 600
EXAMPLE_FILES = ["nginx.json", "pause.json", "busybox.json", "redis.json", "podinfo.json"]
MULTI_FILES = sorted((EXAMPLES / "multi").glob("*.json"))
MISSING_TAG = {
    "cluster": "blog",
    "namespace": "missing",
    "app": "ghost",
    "image": "public.ecr.aws/nginx/nginx:no-such-tag",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, served: Served, burst_lock: Any) -> dict[str, Finished]:
    """Every example with --teardown --json, the two-namespace set with --json, and a missing tag (readable output),
    run concurrently — and after ``sandbox serve`` was started, so its sandbox comes up meanwhile — while no other
    burst of executions runs on the other test worker (``burst_lock``)."""
    workdir = tmp_path_factory.mktemp("cli-runs")
    missing = workdir / "missing-tag.json"
    missing.write_text(json.dumps(MISSING_TAG))
    with burst_lock():
        return run_together(workdir, missing)


def run_together(workdir: Path, missing: Path) -> dict[str, Finished]:
    started = {
        "examples": Background(
            [
                "sandbox",
                "run",
                *[a for f in EXAMPLE_FILES for a in ("--request", str(EXAMPLES / f))],
                "--teardown",
                "--json",
            ],
            workdir / "examples",
        ),
        "multi": Background(
            ["sandbox", "run", *[a for f in MULTI_FILES for a in ("--request", str(f))], "--json"], workdir / "multi"
        ),
        "missing": Background(["sandbox", "run", "--request", str(missing)], workdir / "missing"),
    }
    try:
        return {name: background.finish(RUN_TIMEOUT) for name, background in started.items()}
    finally:
        for background in started.values():
            background.stop()


def by_app(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {result["request"]["app"]: result for result in results}


# --- sandbox run: the walkthrough and the examples ---------------------------------------------------------------------
def test_the_seed_scenario_runs_on_a_fargate_node_with_the_image_pinned(runs: dict[str, Finished]) -> None:
    # Given the examples were run (the walkthrough's request among them)
    finished = runs["examples"]
    assert finished.returncode == 0, finished.stderr[-3000:]
    # Then the walkthrough's app has the result of docs/design.md §3
    result = by_app(finished.json())["demo-app"]
    assert result["status"] == "SUCCEEDED"
    assert ":execution:" in result["executionArn"]
    assert {k: result["request"][k] for k in ("cluster", "namespace", "app", "image", "cachePrefix")} == {
        "cluster": "blog",
        "namespace": "fargate",
        "app": "demo-app",
        "image": "public.ecr.aws/nginx/nginx:stable",
        "cachePrefix": "ecr-public",
    }
    assert result["podExecutionRole"]["arn"] == "arn:aws:iam::111122223333:role/FargateAppPodExecution-blog"
    assert result["fargateProfile"]["status"] == "ACTIVE"
    # the shared profile (FargateProfileStrategy's default): every managed pod, any namespace
    assert result["fargateProfile"]["selectors"] == [
        {"namespace": "*", "labels": {"app.kubernetes.io/managed-by": "fargate-app-provisioner"}}
    ]
    assert result["cacheRule"]["ecrRepositoryPrefix"] == "ecr-public"
    assert result["cacheRule"]["upstreamRegistryUrl"] == "public.ecr.aws"
    assert result["deployment"]["readyReplicas"] == result["deployment"]["replicas"] == 1
    # with the pod Running on a Fargate node
    (pod,) = result["pods"]
    assert pod["phase"] == "Running"
    assert re.fullmatch(r"fargate-ip-10-0-\d+-\d+\.us-west-2\.compute\.internal", pod["node"])
    # and the image pinned by the digest of the seeded upstream's image index
    digest = multi_arch_sample("nginx").digest
    assert result["image"]["digest"] == digest
    assert result["image"]["cached"].endswith(f"/ecr-public/nginx/nginx@{digest}")
    # and its progress was shown state by state on stderr
    assert "[blog/fargate/demo-app] provision: WarmImageCache done" in finished.stderr
    assert "[blog/fargate/demo-app] provision SUCCEEDED" in finished.stderr


def test_teardown_leaves_no_profile_deployment_pods_or_node(runs: dict[str, Finished]) -> None:
    # Given every example was provisioned and then torn down in one run
    results = runs["examples"].json()
    # Then each teardown succeeded and neither it nor the sandbox's own check found anything left
    for result in results:
        teardown = result["teardown"]
        assert (teardown["status"], teardown["leftovers"]) == ("SUCCEEDED", []), result["request"]["app"]
        deleted = [(d["kind"], d["name"]) for d in teardown["deleted"]["deleted"]]
        assert ("Deployment", result["request"]["app"]) in deleted
    # and the profile the run created was deleted by the teardown of the app that created it
    (creator,) = [r for r in results if r["fargateProfile"]["created"]]
    assert creator["teardown"]["fargateProfile"]["deleting"] is True
    assert creator["teardown"]["fargateProfile"]["profile"]["name"] == creator["fargateProfile"]["name"]


def test_every_example_request_succeeds_including_the_credentialed_upstreams(runs: dict[str, Finished]) -> None:
    results = by_app(runs["examples"].json())
    # Then every seeded upstream was cached through its default prefix and every pod runs on Fargate
    expected = {
        "demo-app": ("ecr-public", "public.ecr.aws", None),
        "pause": ("k8s", "registry.k8s.io", None),
        "busybox": ("quay", "quay.io", None),
        "redis": ("docker-hub", "registry-1.docker.io", "ecr-pullthroughcache/docker-hub"),
        "podinfo": ("github", "ghcr.io", "ecr-pullthroughcache/github"),
    }
    assert sorted(results) == sorted(expected)
    for app, (prefix, upstream, secret) in expected.items():
        result = results[app]
        assert result["status"] == "SUCCEEDED", app
        rule = result["cacheRule"]
        assert (rule["ecrRepositoryPrefix"], rule["upstreamRegistryUrl"], rule["validated"]) == (prefix, upstream, True)
        assert (rule["credentialArn"] or "").endswith(secret or "") and bool(rule["credentialArn"]) == bool(secret)
        assert result["image"]["cached"].endswith(f"@{result['image']['digest']}")
        assert len(result["pods"]) == result["request"]["replicas"]
        assert all(p["phase"] == "Running" and p["node"].startswith("fargate-ip-") for p in result["pods"])


def test_five_requests_in_two_namespaces_run_concurrently_with_at_most_two_profiles(runs: dict[str, Finished]) -> None:
    finished = runs["multi"]
    # Then all five succeed
    assert finished.returncode == 0, finished.stderr[-3000:]
    results = finished.json()
    assert len(results) == 5 and all(r["status"] == "SUCCEEDED" for r in results)
    assert {r["request"]["namespace"] for r in results} == {"shop", "ops"}
    # with one profile per namespace, each created once and reused by the namespace's other apps
    profiles = {r["request"]["namespace"]: set() for r in results}
    for result in results:
        profiles[result["request"]["namespace"]].add(result["fargateProfile"]["name"])
    assert all(len(names) == 1 for names in profiles.values())
    assert sum(1 for r in results if r["fargateProfile"]["created"]) <= 2
    # and they ran at the same time: every execution had passed ValidateRequest before the first one ended
    lines = finished.stderr.splitlines()
    first_end = next(i for i, line in enumerate(lines) if re.search(r"provision (SUCCEEDED|FAILED)", line))
    validated = {line.split("]")[0] for line in lines[:first_end] if "provision: ValidateRequest done" in line}
    assert len(validated) == 5


def test_a_missing_tag_exits_1_at_warm_image_cache_leaving_nothing(runs: dict[str, Finished]) -> None:
    finished = runs["missing"]
    # Then the run fails with exit code 1, naming the step and the error
    assert finished.returncode == 1, finished.stderr[-3000:]
    out = finished.stdout
    assert "ghost in blog/missing: FAILED" in out
    assert re.search(r"^failed at\s+WarmImageCache: ImageNotFound$", out, re.M)
    assert re.search(r"^cause\s+.*no-such-tag", out, re.M)
    # and what the execution created was undone, with nothing left behind (the sandbox checked)
    undone = re.search(r"^undone\s+(.*)$", out, re.M)
    assert undone and "Fargate profile fargate-app-shared-" in undone[1]
    assert "pull-through-cache rule ecr-public" in undone[1]
    assert re.search(r"^left behind\s+nothing$", out, re.M)
    # and the readable summary ends like kubectl: no pods, no Fargate node
    assert out.rstrip().endswith("$ kubectl get nodes\nNo resources found")
    assert "$ kubectl get pods -A -o wide\nNo resources found" in out


# --- sandbox run: requests rejected before anything starts --------------------------------------------------------------
def test_an_invalid_request_exits_2_naming_the_field_and_starts_nothing(tmp_path: Path) -> None:
    # Given one valid and one invalid request
    invalid = tmp_path / "invalid.json"
    invalid.write_text(
        json.dumps({"cluster": "blog", "namespace": "fargate", "app": "Bad_App", "image": "nginx", "colour": "red"})
    )
    # When they are run
    finished = run_cli(
        ["sandbox", "run", "--request", str(EXAMPLES / "nginx.json"), "--request", str(invalid), "--json"]
    )
    # Then the run is refused with each field and its rule, and no sandbox was started
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert re.search(rf"{re.escape(str(invalid))}: app: .*DNS-1123", finished.stderr)
    assert f"{invalid}: colour: unknown field" in finished.stderr
    assert "nothing was started" in finished.stderr
    assert "Starting the sandbox" not in finished.stderr


def test_a_credentialed_upstream_without_credential_arn_exits_2(tmp_path: Path) -> None:
    # Given the Docker Hub example without its credentialArn
    request = json.loads((EXAMPLES / "redis.json").read_text())
    del request["credentialArn"]
    path = tmp_path / "redis-no-credential.json"
    path.write_text(json.dumps(request))
    # When it is run, then it is refused naming credentialArn, before anything starts
    finished = run_cli(["sandbox", "run", "--request", str(path)])
    assert finished.returncode == 2
    assert re.search(r"credentialArn: is required for images from (docker\.io|registry-1\.docker\.io)", finished.stderr)
    assert "Starting the sandbox" not in finished.stderr


# --- sandbox serve --------------------------------------------------------------------------------------------------------
SANDBOX_ADMIN = ("AKIASANDBOX000000000", "sandbox")  # the key `sandbox serve` prints


def http(method: str, url: str, document: Any = None, *, signed: bool = True) -> tuple[int, dict[str, Any]]:
    """A call of the served API, SigV4-signed as the sandbox's administrator unless ``signed`` is False."""
    body = json.dumps(document).encode() if document is not None else None
    headers = {"Content-Type": "application/json"}
    if signed:
        aws_request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(Credentials(*SANDBOX_ADMIN), "execute-api", "us-west-2").add_auth(aws_request)
        headers = dict(aws_request.headers.items())
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def wait_until_done(url: str, kind: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status, body = http("GET", url)
        assert status == 200, body
        if body["kind"] == kind and body["status"] != "RUNNING":
            return body
        assert time.monotonic() < deadline, f"still {body['status']} in {body['currentState']}"
        time.sleep(0.3)


class Served(NamedTuple):
    server: Background
    url: str  # the API
    state: Path  # its --state-dir: env and kubeconfig


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``sandbox serve --port 0 --state-dir …``, once it printed ``sandbox ready``, and the API URL it printed."""
    workdir = tmp_path_factory.mktemp("serve")
    state = workdir / "state"
    server = Background(["sandbox", "serve", "--port", "0", "--state-dir", str(state)], workdir)
    try:
        ready = None
        deadline = time.monotonic() + 90
        while ready is None and time.monotonic() < deadline and server.process.poll() is None:
            ready = re.search(
                r"API listening on (http://127\.0\.0\.1:\d+)\nsandbox ready: source (.+)\n",
                (workdir / "stdout").read_text(),
            )
            time.sleep(0.1)
        assert ready, (workdir / "stderr").read_text()[-3000:]
        assert ready[2] == str(state / "env")
        yield Served(server, ready[1], state)
    finally:
        server.stop()


def env_file_variables(path: Path) -> dict[str, str]:
    """``export NAME=VALUE`` lines as a shell reads them (the values are shell-quoted)."""
    found = re.findall(r"^export (\w+)=(.*)$", path.read_text(), flags=re.MULTILINE)
    return {name: shlex.split(value)[0] for name, value in found}


def kubectl(state: Path, *args: str) -> Any:
    """Real kubectl with the serve's kubeconfig and no AWS settings of its own: the token plugin carries them."""
    binary = os.environ.get("KUBECTL") or shutil.which("kubectl")
    assert binary, "make test resolves a real kubectl (tools/kubectl.py); the test needs the real client"
    answer = subprocess.run(
        [binary, *args, "-o", "json"],
        capture_output=True,
        text=True,
        env=cli_environment(KUBECONFIG=str(state / "kubeconfig")),
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def sdk_client(service: str, variables: dict[str, str]) -> Any:
    """A boto3 client configured only by the env file's values, as a user's shell after ``source DIR/env``."""
    return boto3.client(
        service,
        endpoint_url=variables["AWS_ENDPOINT_URL"],
        region_name=variables["AWS_REGION"],
        aws_access_key_id=variables["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=variables["AWS_SECRET_ACCESS_KEY"],
    )


def ecr_login(variables: dict[str, str]) -> str:
    """``AWS:<password>`` from GetAuthorizationToken, what ``aws ecr get-login-password`` prints, for ``--creds``."""
    encoded = sdk_client("ecr", variables).get_authorization_token()["authorizationData"][0]["authorizationToken"]
    return base64.b64decode(encoded).decode()


def test_sandbox_serve_lets_kubectl_the_aws_sdk_and_the_cli_in_through_its_state_folder(
    served: Served, tmp_path: Path
) -> None:
    _, url, state = served
    # Then the env file names every part, and `sandbox env` prints the same lines while the serve runs
    variables = env_file_variables(state / "env")
    assert set(variables) == {
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "KUBECONFIG",
        "FARGATE_APP_API",
        "FARGATE_APP_REGISTRY",
    }
    assert (variables["FARGATE_APP_API"], variables["KUBECONFIG"]) == (url, str(state / "kubeconfig"))
    shown = run_cli(["sandbox", "env", "--state-dir", str(state)])
    assert (shown.returncode, shown.stdout) == (0, (state / "env").read_text())

    # When the AWS SDK uses those variables, Then it reaches the emulated EKS, whose cluster the kubeconfig names
    cluster = sdk_client("eks", variables).describe_cluster(name="blog")["cluster"]
    kubeconfig = json.loads((state / "kubeconfig").read_text())
    assert kubeconfig["clusters"][0]["cluster"] == {
        "server": cluster["endpoint"],
        "certificate-authority-data": cluster["certificateAuthority"]["data"],
    }
    # and real kubectl authenticates with a token its exec plugin minted
    assert kubectl(state, "get", "nodes")["kind"] == "List"

    # When the CLI is pointed at the local API (FARGATE_APP_API) with no AWS credentials configured
    request = tmp_path / "tools.json"
    request.write_text(json.dumps({**json.loads((EXAMPLES / "nginx.json").read_text()), "namespace": "tools"}))
    environment = cli_environment(FARGATE_APP_API=url)
    started = run_cli(["request", "--request", str(request)], env=environment)
    assert started.returncode == 0, started.stderr
    # Then the provision runs, and kubectl sees its pod Running on a Fargate node
    done = run_cli(["status", "blog", "tools", "demo-app", "--watch", "--json"], env=environment, timeout=180)
    assert (done.returncode, done.json()["status"]) == (0, "SUCCEEDED"), done.stderr
    pods = kubectl(state, "get", "pods", "--namespace", "tools")["items"]
    assert [(pod["status"]["phase"], pod["spec"]["nodeName"][:11]) for pod in pods] == [("Running", "fargate-ip-")]
    # and skopeo, logged in with the ECR token the SDK gets, reads the cached image through FARGATE_APP_REGISTRY
    token = ecr_login(variables)
    inspected = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds", token, "--raw",
         f"docker://{variables['FARGATE_APP_REGISTRY']}/ecr-public/nginx/nginx:stable"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["schemaVersion"] == 2
    gone = run_cli(["teardown", "blog", "tools", "demo-app"], env=environment)
    assert gone.returncode == 0, gone.stderr


def test_sandbox_serve_answers_post_get_delete_over_plain_http(served: Served) -> None:
    server, url, state = served
    app_url = f"{url}/apps/blog/served/web"
    request = {"cluster": "blog", "namespace": "served", "app": "web", "image": "public.ecr.aws/nginx/nginx:stable"}
    # When a call is not signed, then API Gateway's IAM authorization refuses it before the function
    assert http("GET", app_url, signed=False) == (403, {"message": "Missing Authentication Token"})
    # When an invalid request is posted, then the API names the field
    status, body = http("POST", f"{url}/apps", {**request, "replicas": 0})
    assert (status, body["error"]) == (400, "InvalidRequest") and "replicas" in body["fields"]
    # When an unknown app is asked for, then 404
    assert http("GET", f"{url}/apps/blog/served/nobody")[0] == 404
    # When the request is posted, then its provision is accepted and runs to the §3 result
    status, body = http("POST", f"{url}/apps", request)
    assert (status, body["kind"], body["statusUrl"]) == (202, "provision", "/apps/blog/served/web")
    provisioned = wait_until_done(app_url, "provision")
    assert provisioned["status"] == "SUCCEEDED", provisioned["error"]
    assert provisioned["result"]["pods"][0]["node"].startswith("fargate-ip-")
    # and `fargate-app status` shows the same document as sandbox run's result
    shown = run_cli(
        ["status", "--api", url, "blog", "served", "web", "--json", "--region", "us-west-2"],
        env=cli_environment(AWS_ACCESS_KEY_ID=SANDBOX_ADMIN[0], AWS_SECRET_ACCESS_KEY=SANDBOX_ADMIN[1]),
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.json() == provisioned["result"]
    # and the app inventory lists it RUNNING (GET /apps, and `fargate-app list` as a table)
    status, listed = http("GET", f"{url}/apps?cluster=blog&namespace=served")
    assert (status, [(a["app"], a["state"], a["revision"]) for a in listed["apps"]]) == (200, [("web", "RUNNING", 1)])
    table = run_cli(
        ["list", "--api", url, "--cluster", "blog", "--namespace", "served", "--region", "us-west-2"],
        env=cli_environment(AWS_ACCESS_KEY_ID=SANDBOX_ADMIN[0], AWS_SECRET_ACCESS_KEY=SANDBOX_ADMIN[1]),
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.split("\n")[0].split() == ["APP", "STATE", "REVISION", "IMAGE", "UPDATED"]
    assert table.stdout.split("\n")[1].split()[:4] == [
        "blog/served/web",
        "RUNNING",
        "1",
        "public.ecr.aws/nginx/nginx:stable",
    ]
    # When it is deleted, then the teardown runs and leaves nothing
    status, body = http("DELETE", app_url)
    assert (status, body["kind"]) == (202, "teardown")
    torn_down = wait_until_done(app_url, "teardown")
    assert torn_down["status"] == "SUCCEEDED" and torn_down["result"]["leftovers"] == []
    assert torn_down["state"] == "TORN_DOWN"
    # When it is interrupted (Ctrl-C), then it stops cleanly
    server.process.send_signal(signal.SIGINT)
    finished = server.finish(timeout=90)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "Stopping the sandbox" in finished.stderr
    # and leaves its env and kubeconfig for the user to read, while `sandbox env` no longer reports a serve
    assert (state / "env").is_file() and (state / "kubeconfig").is_file()
    after = run_cli(["sandbox", "env", "--state-dir", str(state)])
    assert (after.returncode, after.stdout) == (1, "")
    assert f"no sandbox serve is running with state folder {state}" in after.stderr


# --- remote commands -------------------------------------------------------------------------------------------------------
ACCESS_KEY, SECRET_KEY = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SIGNED_ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-west-2"}


def deployed_api_answers() -> Any:
    """A deployed API's answers: the provision accepted, RUNNING twice, then SUCCEEDED; the teardown accepted."""
    result = {
        "status": "SUCCEEDED",
        "executionArn": "arn:aws:states:us-west-2:111122223333:execution:provision:demo",
        "request": json.loads((EXAMPLES / "nginx.json").read_text()),
        "podExecutionRole": {"arn": "arn:aws:iam::111122223333:role/FargateAppPodExecution-blog", "created": True},
        "fargateProfile": {"name": "fargate-app-fargate-1", "status": "ACTIVE", "created": True, "selectors": []},
        "cacheRule": {"ecrRepositoryPrefix": "ecr-public", "upstreamRegistryUrl": "public.ecr.aws", "created": True},
        "image": {
            "requested": "public.ecr.aws/nginx/nginx:stable",
            "cached": "x/ecr-public/nginx/nginx@sha256:1",
            "digest": "sha256:1",
            "platform": "linux/amd64",
            "layersWarmed": 2,
            "bytesWarmed": 10,
        },
        "deployment": {"namespace": "fargate", "name": "demo-app", "replicas": 1, "readyReplicas": 1},
        "pods": [{"name": "demo-app-1", "phase": "Running", "status": "Running", "node": "fargate-ip-10-0-1-1"}],
        "ingress": None,
    }
    states = iter(["EnsureFargateProfile", "WarmImageCache"])

    def answer(method: str, path: str, body: bytes) -> tuple[int, Any]:
        if method == "PUT" and path == "/prod/apps/blog/fargate/demo-app":
            return 202, {"executionArn": result["executionArn"], "kind": "provision", "status": "RUNNING"}
        if method == "DELETE" and path == "/prod/apps/blog/fargate/demo-app":
            return 202, {"executionArn": "arn:…:teardown", "kind": "teardown", "status": "RUNNING"}
        if method == "GET" and path == "/prod/apps/blog/fargate/demo-app":
            state = next(states, None)
            base = {"kind": "provision", "executionArn": result["executionArn"], "error": None}
            if state:
                return 200, {**base, "status": "RUNNING", "currentState": state, "result": None}
            return 200, {**base, "status": "SUCCEEDED", "currentState": "ReportResult", "result": result}
        return 404, {"error": "NotFound", "message": path}

    return answer, result


def test_remote_commands_sign_their_requests_with_sigv4() -> None:
    answer, result = deployed_api_answers()
    with SigV4CheckingApi(ACCESS_KEY, SECRET_KEY, answer) as api:
        env = cli_environment(**SIGNED_ENV)
        # When a request is sent, its status watched and the app torn down
        sent = run_cli(["request", "--api", api.url, "--request", str(EXAMPLES / "nginx.json")], env=env)
        watched = run_cli(["status", "--api", api.url, "blog", "fargate", "demo-app", "--watch", "--json"], env=env)
        deleted = run_cli(["teardown", "--api", api.url, "blog", "fargate", "demo-app"], env=env)
    # Then each call was signed for execute-api in the region, and the signatures verify; the request went by PUT on
    # the app's own path, which a team's IAM policy can scope
    assert (sent.returncode, watched.returncode, deleted.returncode) == (0, 0, 0), sent.stderr + watched.stderr
    assert [(c.method, c.path) for c in api.calls] == [
        ("PUT", "/prod/apps/blog/fargate/demo-app"),
        *[("GET", "/prod/apps/blog/fargate/demo-app")] * 3,
        ("DELETE", "/prod/apps/blog/fargate/demo-app"),
    ]
    assert all(call.signature_valid for call in api.calls)
    assert all(call.scope.endswith("/us-west-2/execute-api/aws4_request") for call in api.calls)
    # and the request went as written, the status followed to the end and printed as §3
    assert json.loads(api.calls[0].body) == json.loads((EXAMPLES / "nginx.json").read_text())
    assert sent.json()["executionArn"] == result["executionArn"]
    assert watched.json() == result
    assert "WarmImageCache" in watched.stderr


def test_a_wrong_secret_fails_the_signature_check() -> None:
    answer, _ = deployed_api_answers()
    with SigV4CheckingApi(ACCESS_KEY, SECRET_KEY, answer) as api:
        # When the caller signs with another secret
        env = cli_environment(**{**SIGNED_ENV, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
        finished = run_cli(["status", "--api", api.url, "blog", "fargate", "demo-app"], env=env)
    # Then the server's botocore check rejects it and the CLI reports the 403
    assert [call.signature_valid for call in api.calls] == [False]
    assert finished.returncode == 1
    assert "HTTP 403" in finished.stderr
