"""``fargate-app sandbox run`` and ``sandbox serve`` (docs/design.md §7).

``run``: every request is validated before anything starts (exit 2), then one sandbox starts and every request goes
through the API as a deployed stack receives it — ``POST /apps`` through the emulated API Gateway to the real API
function, which starts the real provision state machine. Progress comes from the execution histories; the results
come back through ``GET /apps/…``, and ``--teardown`` goes through ``DELETE /apps/…``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from fargate_app_cli import render, sandbox_checks
from fargate_app_cli.outcomes import provision_outcome, succeeded, teardown_record
from fargate_app_cli.progress import Track, follow, progress_view
from fargate_app_cli.request_files import RequestFile, RequestFileError, load_requests
from fargate_app_cli.sandbox_state import SandboxAddress, default_state_dir, forget_serving, write_state
from fargate_sandbox.api_server import ApiServer
from fargate_sandbox.seeds import ACCOUNT_ID, CLUSTER_NAME, REGION
from fargate_sandbox.session import SandboxSession, SandboxStartError

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
EXECUTION_TIMEOUT_SECONDS = 600.0


def run_requests(
    paths: list[Path], *, teardown: bool, as_json: bool, out: TextIO, err: TextIO, template: Path | None = None
) -> int:
    """The whole ``sandbox run``; the exit code (0 all succeeded, 1 an execution failed, 2 a request is invalid)."""
    try:
        files = load_requests(paths, region=REGION, account=ACCOUNT_ID)
    except RequestFileError as exc:
        print("error: invalid request; nothing was started:", file=err)
        for problem in exc.problems:
            print(f"  {problem}", file=err)
        return EXIT_INVALID
    print(f"Starting the sandbox (account {ACCOUNT_ID}, region {REGION}, cluster blog)…", file=err, flush=True)
    try:
        with SandboxSession(template=template) as session:
            prefixes_before = sandbox_checks.cache_prefixes(session)
            outcomes = _provision_all(session, files, err)
            if not as_json:
                render.print_outcomes(out, outcomes)
                _print_cluster(out, session, files)
            if teardown:
                _teardown_all(session, outcomes, err)
            _check_failures(session, files, outcomes, prefixes_before)
            if as_json:
                document: Any = outcomes[0] if len(outcomes) == 1 else outcomes
                out.write(json.dumps(document, indent=2) + "\n")
            elif teardown:
                render.print_teardowns(out, outcomes)
                _print_cluster(out, session, files)
    except SandboxStartError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    return EXIT_OK if all(succeeded(outcome) for outcome in outcomes) else EXIT_FAILED


def _in_parallel(calls: list[Any], function: Any) -> list[Any]:
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        return list(pool.map(function, calls))


def _refused(method: str, path: str, status: int, body: Any) -> dict[str, Any]:
    """The API refused the call: reported like a failed step, named after the call."""
    body = body if isinstance(body, dict) else {}
    return {
        "step": f"{method} {path}",
        "error": str(body.get("error") or f"HTTP {status}"),
        "cause": str(body.get("message") or body),
        "compensated": [],
        "leftovers": [],
    }


def _follow(session: SandboxSession, tracks: list[Track], err: TextIO) -> None:
    if tracks:
        with progress_view(tracks, err) as view:
            follow(tracks, session.history, view, EXECUTION_TIMEOUT_SECONDS)


TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
GET_ATTEMPTS = 5


def _get_app(session: SandboxSession, path: str) -> tuple[int, Any]:
    """GET an app's status as a client of API Gateway would: a throttled or failed answer (429/5xx: API Gateway's
    own, or the function's under load) is tried again with backoff; the last answer is returned either way."""
    for attempt in range(GET_ATTEMPTS):
        answer = session.api.call("GET", path)
        if answer.status not in TRANSIENT_STATUSES or attempt == GET_ATTEMPTS - 1:
            return answer.status, answer.json()
        time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


def _provision_all(session: SandboxSession, files: list[RequestFile], err: TextIO) -> list[dict[str, Any]]:
    answers = _in_parallel(files, lambda item: session.api.call("POST", "/apps", item.document))
    tracks: dict[str, Track] = {}
    outcomes: list[dict[str, Any]] = []
    for item, answer in zip(files, answers, strict=True):
        body = answer.json()
        if answer.status in (200, 202):
            tracks[item.app] = Track(item.app, "provision", body["executionArn"])
        else:
            outcomes.append(
                {
                    "status": "FAILED",
                    "request": item.request.to_json(),
                    "error": _refused("POST", "/apps", answer.status, body),
                }
            )
    _follow(session, list(tracks.values()), err)
    finished = {}
    for item in files:
        if item.app in tracks:
            path = f"/apps/{item.app}"
            status, body = _get_app(session, path)
            finished[item.app] = (
                provision_outcome(body, item.request.to_json())
                if status == 200
                else {
                    "status": "FAILED",
                    "request": item.request.to_json(),
                    "error": _refused("GET", path, status, body),
                }
            )
    refused = iter(outcomes)
    return [finished[item.app] if item.app in finished else next(refused) for item in files]


def _teardown_all(session: SandboxSession, outcomes: list[dict[str, Any]], err: TextIO) -> None:
    """DELETE every provisioned app. Apps that reused a Fargate profile go first: a profile is deleted only by the
    teardown of the app that created it, and only once no other app's pods need it."""
    provisioned = [o for o in outcomes if o.get("status") == "SUCCEEDED"]
    reusing = [o for o in provisioned if not (o.get("fargateProfile") or {}).get("created")]
    creating = [o for o in provisioned if (o.get("fargateProfile") or {}).get("created")]
    for wave in (reusing, creating):
        paths = [f"/apps/{o['request']['cluster']}/{o['request']['namespace']}/{o['request']['app']}" for o in wave]
        answers = _in_parallel(paths, lambda path: session.api.call("DELETE", path))
        tracks = []
        for outcome, path, answer in zip(wave, paths, answers, strict=True):
            body = answer.json()
            if answer.status in (200, 202):
                tracks.append(Track(path.removeprefix("/apps/"), "teardown", body["executionArn"]))
            else:
                error = _refused("DELETE", path, answer.status, body)
                outcome["teardown"] = {"status": "FAILED", "error": error, "leftovers": []}
        _follow(session, tracks, err)
        for outcome, path in zip(wave, paths, strict=True):
            if "teardown" not in outcome:
                status, body = _get_app(session, path)
                outcome["teardown"] = (
                    teardown_record(body)
                    if status == 200
                    else {"status": "FAILED", "leftovers": [], "error": _refused("GET", path, status, body)}
                )
    # Deleting profiles take the sandbox's delay to disappear; what is still there afterwards is a leftover.
    session.wait_for_profiles_settled(timeout_s=session.profile_seconds * (len(creating) + 2) + 5)
    for outcome in provisioned:
        record = outcome["teardown"]
        record["leftovers"] = sandbox_checks.merge(record["leftovers"], sandbox_checks.after_teardown(session, outcome))


def _check_failures(
    session: SandboxSession, files: list[RequestFile], outcomes: list[dict[str, Any]], prefixes_before: set[str]
) -> None:
    """Add to each failed provision's ``leftovers`` what the sandbox still holds of it."""
    failed = [(item, o) for item, o in zip(files, outcomes, strict=True) if o.get("status") != "SUCCEEDED"]
    if not failed:
        return
    session.wait_for_profiles_settled(timeout_s=session.profile_seconds * (len(failed) + 2) + 5)
    in_use = {o["cacheRule"]["ecrRepositoryPrefix"] for o in outcomes if o.get("status") == "SUCCEEDED"}
    for item, outcome in failed:
        error = outcome.setdefault("error", {})
        observed = sandbox_checks.after_failure(session, item.request, prefixes_before, in_use)
        error["leftovers"] = sandbox_checks.merge(list(error.get("leftovers") or []), observed)


def _print_cluster(out: TextIO, session: SandboxSession, files: list[RequestFile]) -> None:
    """The cluster as real kubectl shows it, through the kubeconfig ``sandbox serve`` writes; without a kubectl, the
    CLI's own rendering of the same tables, and where to get the real one."""
    kubectl = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if kubectl is None:
        kubernetes = session.sandbox.kubernetes
        assert kubernetes is not None
        namespaces = sorted({item.request.namespace for item in files})
        pods = [pod for namespace in namespaces for pod in kubernetes.objects("Pod", namespace)]
        print(
            "(no kubectl on PATH: the CLI's rendering; `python tools/kubectl.py --dest .venv/bin` gets one)", file=out
        )
        render.print_cluster(out, pods, kubernetes.objects("Node"))
        return
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "kubeconfig"
        config.write_text(json.dumps(_address(session, api_url=None).kubeconfig()))
        for args in (["get", "pods", "-A", "-o", "wide"], ["get", "nodes"]):
            shown = subprocess.run(  # noqa: S603 - the user's kubectl, our arguments
                [kubectl, *args],
                capture_output=True,
                text=True,
                env={**os.environ, "KUBECONFIG": str(config)},
                timeout=120,
                check=False,
            )
            print(f"$ kubectl {' '.join(args)}", file=out)
            print((shown.stdout + shown.stderr).rstrip() + "\n", file=out, flush=True)


def _probed_address(session: SandboxSession, api_url: str | None) -> SandboxAddress:
    """Where each part of the sandbox answers, once each has answered (at start, so the caller knows they all do).

    Raises:
        SandboxStartError: a part does not answer.
    """
    sandbox = session.sandbox
    probes = {"AWS": sandbox.endpoint_url, "the registry": f"{sandbox.registry_url}/v2/"}
    if api_url is not None:  # `sandbox run` serves no API of its own
        probes["the API"] = f"{api_url}/apps"
    for part, url in probes.items():
        try:
            urllib.request.urlopen(url, timeout=5).close()  # noqa: S310 - our own loopback URLs
        except urllib.error.HTTPError:
            pass  # an answer (403 unsigned, 401 without a token): the part is up
        except OSError as exc:
            raise SandboxStartError(f"{part} does not answer at {url}: {exc}") from exc
    return _address(session, api_url)


def _address(session: SandboxSession, api_url: str | None) -> SandboxAddress:
    """Where each part of the sandbox answers, without asking them: after a run its parts have answered all along, and
    a 5 s probe of a front busy with other executions would turn a finished run into a start error.

    Raises:
        SandboxStartError: the sandbox's cluster did not start.
    """
    sandbox = session.sandbox
    kubernetes = sandbox.kubernetes
    key, secret = sandbox.credentials
    if kubernetes is None:
        raise SandboxStartError("the sandbox's cluster did not start")
    return SandboxAddress(
        aws_endpoint_url=sandbox.endpoint_url,
        access_key=key,
        secret_key=secret,
        region=REGION,
        api_url=api_url or "",
        registry=sandbox.registry_url.removeprefix("http://"),
        cluster=CLUSTER_NAME,
        kubernetes_endpoint=kubernetes.endpoint,
        kubernetes_ca_data=kubernetes.ca_data,
    )


def serve(port: int, *, out: TextIO, err: TextIO, template: Path | None = None, state_dir: Path | None = None) -> int:
    """``sandbox serve``: the API on http://127.0.0.1:<port> until SIGINT or SIGTERM; ``state_dir`` (default:
    ``default_state_dir()``) gets the env file and kubeconfig that let other tools in."""
    state_dir = (state_dir or default_state_dir()).resolve()
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"Starting the sandbox (account {ACCOUNT_ID}, region {REGION}, cluster blog)…", file=err, flush=True)
        with SandboxSession(template=template) as session:
            server = ApiServer(session.api, port, log=err).start()
            try:
                print(f"API listening on {server.url}", file=out, flush=True)
                env_file = write_state(state_dir, _probed_address(session, server.url))
                app_url = f"{server.url}/apps/blog/fargate/demo-app"
                sign = f'--aws-sigv4 aws:amz:{REGION}:execute-api --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"'
                print(
                    f"Other tools, after `source {env_file}` (the sandbox administrator's fixed, fake key):\n"
                    "  kubectl get pods -A -o wide          # KUBECONFIG: cluster blog, tokens minted as EKS wants\n"
                    "  aws eks list-clusters                # AWS_ENDPOINT_URL: the emulated AWS\n"
                    "  fargate-app request -r examples/nginx.json   # --api defaults to $FARGATE_APP_API\n"
                    f"  curl {sign} -X PUT {app_url} -H 'Content-Type: application/json' -d @examples/nginx.json\n"
                    "Ctrl-C stops the sandbox (the files stay).",
                    file=err,
                    flush=True,
                )
                print(f"sandbox ready: source {env_file}", file=out, flush=True)
                while not stop.wait(0.5):  # a timed wait: the signal handler runs between the waits
                    pass
                print("Stopping the sandbox…", file=err, flush=True)
            finally:
                forget_serving(state_dir)
                server.stop()
    except SandboxStartError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return EXIT_OK
