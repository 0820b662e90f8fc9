"""``fargate-app request | status | teardown | list --api URL …``: the same API as ``sandbox serve``, on a deployed
stack."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

from fargate_app_cli import render
from fargate_app_cli.outcomes import RUNNING, SUCCEEDED, status_document
from fargate_app_cli.progress import Track, observe, progress_view
from fargate_app_cli.remote import ApiResponse, RemoteApi, RemoteCallError, RemoteConfigError, app_path
from fargate_app_cli.request_files import RequestFileError, load_requests

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
WATCH_POLL_SECONDS = 2.0
WATCH_TIMEOUT_SECONDS = 1800.0


@dataclass(frozen=True)
class Console:
    """Where a remote command sends its calls (the stack's API in its region) and prints (answers, errors)."""

    api_url: str
    region: str | None
    out: TextIO
    err: TextIO

    def api(self) -> RemoteApi | None:
        """The signing client, or None once the reason it cannot sign has been printed."""
        try:
            return RemoteApi(self.api_url, region=self.region)
        except RemoteConfigError as exc:
            self.error(exc)
            return None

    def error(self, problem: object) -> None:
        print(f"error: {problem}", file=self.err)


def _answer(response: ApiResponse, out: TextIO, err: TextIO) -> int:
    """Print the API's JSON answer on stdout when it accepted the call; its error on stderr otherwise."""
    body = response.json()
    if 200 <= response.status < 300:
        out.write(json.dumps(body, indent=2) + "\n")
        return EXIT_OK
    if isinstance(body, dict) and body.get("error"):
        print(f"error: HTTP {response.status} {body['error']}: {body.get('message', '')}", file=err)
        for field, rule in (body.get("fields") or {}).items():
            print(f"  {field}: {rule}", file=err)
    else:
        print(f"error: HTTP {response.status}: {response.body[:500].decode(errors='replace')}", file=err)
    return EXIT_INVALID if response.status == 400 else EXIT_FAILED


def request(console: Console, path: Path) -> int:
    try:
        (item,) = load_requests([path], region=console.region)
    except RequestFileError as exc:
        console.error("invalid request; nothing was sent:")
        for problem in exc.problems:
            print(f"  {problem}", file=console.err)
        return EXIT_INVALID
    api = console.api()
    if api is None:
        return EXIT_INVALID
    try:
        # PUT on the app's own path: the method ARN names cluster and namespace, so a team's IAM policy can allow it
        # (docs/api-access.md); POST /apps is for administrators.
        r = item.request
        code = _answer(
            api.call("PUT", f"/apps/{r.cluster}/{r.namespace}/{r.app}", item.document), console.out, console.err
        )
    except RemoteCallError as exc:
        console.error(exc)
        return EXIT_FAILED
    if code == EXIT_OK:
        follow = f"fargate-app status --api {console.api_url} {r.cluster} {r.namespace} {r.app} --watch"
        print(f"follow it: {follow}", file=console.err)
    return code


def teardown(console: Console, cluster: str, namespace: str, app: str) -> int:
    api = console.api()
    if api is None:
        return EXIT_INVALID
    try:
        return _answer(api.call("DELETE", app_path(cluster, namespace, app)), console.out, console.err)
    except RemoteCallError as exc:
        console.error(exc)
        return EXIT_FAILED


def status(console: Console, cluster: str, namespace: str, app: str, *, watch: bool, as_json: bool) -> int:
    api = console.api()
    if api is None:
        return EXIT_INVALID
    path = app_path(cluster, namespace, app)
    try:
        response = api.call("GET", path)
        body: dict[str, Any] = response.json() if response.status == 200 else {}
        if watch and body.get("status") == RUNNING:
            track = Track(f"{cluster}/{namespace}/{app}", str(body.get("kind")), str(body.get("executionArn")))
            deadline = time.monotonic() + WATCH_TIMEOUT_SECONDS
            with progress_view([track], console.err) as view:
                while response.status == 200 and body.get("status") == RUNNING and time.monotonic() < deadline:
                    view.update(track, observe(track, RUNNING, body.get("currentState")))
                    time.sleep(WATCH_POLL_SECONDS)
                    response = api.call("GET", path)
                    body = response.json() if response.status == 200 else {}
                view.update(track, observe(track, str(body.get("status")), body.get("currentState")))
    except RemoteCallError as exc:
        console.error(exc)
        return EXIT_FAILED
    if response.status != 200:
        return _answer(response, console.out, console.err) or EXIT_FAILED
    document = status_document(body)
    if as_json:
        console.out.write(json.dumps(document, indent=2) + "\n")
    else:
        render.print_outcomes(console.out, [document])
    return EXIT_OK if document.get("status") in (SUCCEEDED, RUNNING) else EXIT_FAILED


def list_apps(
    console: Console,
    cluster: str | None,
    namespace: str | None,
    *,
    limit: int,
    next_token: str | None,
    every_page: bool,
    as_json: bool,
) -> int:
    """GET /apps, one page (or every page): a table, or the API's JSON (``apps`` of all pages read, ``nextToken``)."""
    api = console.api()
    if api is None:
        return EXIT_INVALID
    apps: list[dict[str, Any]] = []
    token = next_token
    try:
        while True:
            query = {"cluster": cluster, "namespace": namespace, "limit": limit, "nextToken": token}
            response = api.call("GET", "/apps?" + urlencode({k: v for k, v in query.items() if v is not None}))
            if response.status != 200:
                return _answer(response, console.out, console.err) or EXIT_FAILED
            page = response.json()
            apps.extend(page.get("apps") or [])
            token = page.get("nextToken")
            if not (every_page and token):
                break
    except RemoteCallError as exc:
        console.error(exc)
        return EXIT_FAILED
    if as_json:
        console.out.write(json.dumps({"apps": apps, "nextToken": token}, indent=2) + "\n")
    else:
        console.out.write((render.apps_table(apps) if apps else "no apps") + "\n")
        if token:
            print(f"more: fargate-app list --api {console.api_url} --next-token {token} (or --all)", file=console.err)
    return EXIT_OK
