"""The ``fargate-app`` command line (docs/design.md §7). Results go to stdout, progress and errors to stderr.

Exit codes: 0 everything succeeded · 1 an execution (or the API call) failed · 2 a request or an option is invalid,
and then nothing was started.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

if TYPE_CHECKING:
    from fargate_app_cli.remote_commands import Console

app = typer.Typer(
    help="Run a public image as an app on EKS Fargate through an ECR pull-through cache: in the local sandbox, or "
    "against a deployed stack's API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
sandbox_app = typer.Typer(help="The local sandbox: emulated AWS and EKS, real state machines and handlers.")
app.add_typer(sandbox_app, name="sandbox", no_args_is_help=True)

RequestFiles = Annotated[
    list[Path],
    typer.Option(
        "--request", "-r", help="A v1 request (JSON, docs/design.md §2); repeat for several apps.", dir_okay=False
    ),
]
ApiUrl = Annotated[
    str,
    typer.Option(
        "--api",
        envvar="FARGATE_APP_API",
        help="The stack's API URL, e.g. https://<id>.execute-api.<region>.amazonaws.com/prod, or a sandbox serve's "
        "http://127.0.0.1:PORT (then signed with the sandbox's key when no AWS credentials are configured).",
    ),
]
Region = Annotated[
    str | None, typer.Option("--region", help="Signing region (default: from the URL, else AWS_REGION/profile).")
]
Cluster = Annotated[str, typer.Argument(help="EKS cluster name.")]
Namespace = Annotated[str, typer.Argument(help="Kubernetes namespace.")]
AppName = Annotated[str, typer.Argument(help="App name.")]
StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where serve writes env and kubeconfig for other tools; default: $XDG_STATE_HOME/fargate-app/sandbox.",
        file_okay=False,
    ),
]
Template = Annotated[
    Path | None,
    typer.Option(
        "--template",
        help="The project's SAM template (its ASL and functions beside it); default: $FARGATE_APP_TEMPLATE, else "
        "./template.yaml.",
        dir_okay=False,
    ),
]
HANDLER_LOG_LEVEL = "WARNING"
EXIT_INTERRUPTED = 130  # the shell's code for a process ended by SIGINT


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class _ToCurrentStderr:
    """A stdout stand-in that writes to whatever ``sys.stderr`` is at the time (rich's Live swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return False


@contextmanager
def _handlers_log_to_stderr() -> Iterator[TextIO]:
    """The sandbox runs the Lambda handlers in this process, and their Powertools logger writes JSON lines to
    ``sys.stdout`` as Lambda expects — here that would corrupt ``--json`` output. So stdout is pointed at stderr
    before the production package creates its logger, and the results are written to the real stdout (yielded).
    Handlers log warnings and errors only, unless POWERTOOLS_LOG_LEVEL says otherwise."""
    real_stdout = sys.stdout
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", HANDLER_LOG_LEVEL)
    # moto's interpreter logs every Fail state it runs with its internal repr; the CLI reports failures itself.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    sys.stdout = _ToCurrentStderr()
    try:
        from fargate_app.observability import logger

        logger.setLevel(os.environ["POWERTOOLS_LOG_LEVEL"])
        yield real_stdout
    finally:
        sys.stdout = real_stdout


def _sandbox_commands() -> ModuleType:
    """The sandbox's commands; without the sandbox's extra installed, exit 1 saying how to install it."""
    try:
        from fargate_app_cli import sandbox_commands
    except ModuleNotFoundError as exc:
        print(
            f"error: the sandbox is not installed ({exc.name} is missing): pip install 'fargate-app-provisioner[sandbox]'",
            file=sys.stderr,
        )
        raise typer.Exit(1) from None
    return sandbox_commands


@sandbox_app.command("run")
def sandbox_run(
    request: RequestFiles,
    teardown: Annotated[bool, typer.Option("--teardown", help="Then tear every app down again.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON (docs/design.md §3).")] = False,
    template: Template = None,
) -> None:
    """Start a sandbox and provision every request concurrently through the API; progress on stderr, results on
    stdout."""
    # SIGTERM ends the run like Ctrl-C: the sandbox's registry processes and servers are stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    run_requests = _sandbox_commands().run_requests  # creates no logger: stdout is redirected below, before one is
    with _handlers_log_to_stderr() as out:
        try:
            code = run_requests(request, teardown=teardown, as_json=as_json, out=out, err=sys.stderr, template=template)
        except KeyboardInterrupt:
            print("interrupted: the sandbox was stopped", file=sys.stderr)
            code = EXIT_INTERRUPTED
    raise typer.Exit(code)


@sandbox_app.command("serve")
def sandbox_serve(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one).")] = 8080,
    template: Template = None,
    state_dir: StateDir = None,
) -> None:
    """Start a sandbox with the API on http://127.0.0.1:PORT (PUT|GET|DELETE /apps/CLUSTER/NAMESPACE/APP, POST
    /apps; AWS_IAM-authorized) until Ctrl-C."""
    serve = _sandbox_commands().serve
    with _handlers_log_to_stderr() as out:
        code = serve(port, out=out, err=sys.stderr, template=template, state_dir=state_dir)
    # The sandbox has stopped in order (servers, workers, registries). The interpreter's own finalisation can then
    # spin in garbage collection over what the stopped servers' threads left (seen after a long serve): nothing is
    # left to clean up, so end the process here.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@sandbox_app.command("env")
def sandbox_env(state_dir: StateDir = None) -> None:
    """Print the export lines of the running sandbox serve (what its env file holds), for `eval "$(…)"`."""
    from fargate_app_cli.sandbox_state import NoSandboxServing, default_state_dir, running_env

    try:
        sys.stdout.write(running_env((state_dir or default_state_dir()).resolve()))
    except NoSandboxServing as exc:
        print(f"error: {exc}; start one with `fargate-app sandbox serve`", file=sys.stderr)
        raise typer.Exit(1) from None


@sandbox_app.command("token")
def sandbox_token(cluster: Annotated[str, typer.Option("--cluster", help="EKS cluster name.")] = "blog") -> None:
    """An ExecCredential with a fresh EKS token for CLUSTER, as `aws eks get-token` prints it (the kubeconfig's
    credential plugin; uses the AWS credentials and endpoint of the environment)."""
    import json
    from datetime import UTC, datetime, timedelta

    from fargate_app.errors import FargateAppError
    from fargate_app.kube.auth import eks_token
    from fargate_app_cli.sandbox_state import EXEC_API_VERSION

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-west-2"
    try:
        token = eks_token(cluster, region)
    except FargateAppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(1) from None
    # EKS accepts a token for 15 minutes; like `aws eks get-token`, say it expires a minute earlier.
    expires = (datetime.now(UTC) + timedelta(minutes=14)).strftime("%Y-%m-%dT%H:%M:%SZ")
    credential = {
        "kind": "ExecCredential",
        "apiVersion": EXEC_API_VERSION,
        "spec": {},
        "status": {"expirationTimestamp": expires, "token": token.value},
    }
    print(json.dumps(credential))


def _console(api: str, region: str | None) -> Console:
    """The remote commands' calls go to ``api``; they print on this process's stdout and stderr."""
    from fargate_app_cli.remote_commands import Console

    return Console(api, region, sys.stdout, sys.stderr)


@app.command("request")
def request_command(
    api: ApiUrl,
    request: Annotated[Path, typer.Option("--request", "-r", help="A v1 request (JSON).", dir_okay=False)],
    region: Region = None,
) -> None:
    """PUT /apps/CLUSTER/NAMESPACE/APP on a deployed stack (SigV4-signed): start provisioning the request."""
    from fargate_app_cli.remote_commands import request as send

    raise typer.Exit(send(_console(api, region), request))


@app.command("status")
def status_command(
    api: ApiUrl,
    cluster: Cluster,
    namespace: Namespace,
    app_name: AppName,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow a running execution until it ends.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (docs/design.md §3).")] = False,
    region: Region = None,
) -> None:
    """GET /apps/CLUSTER/NAMESPACE/APP from a deployed stack (SigV4-signed): the app's latest execution."""
    from fargate_app_cli.remote_commands import status

    raise typer.Exit(status(_console(api, region), cluster, namespace, app_name, watch=watch, as_json=as_json))


@app.command("teardown")
def teardown_command(
    api: ApiUrl, cluster: Cluster, namespace: Namespace, app_name: AppName, region: Region = None
) -> None:
    """DELETE /apps/CLUSTER/NAMESPACE/APP on a deployed stack (SigV4-signed): start tearing the app down."""
    from fargate_app_cli.remote_commands import teardown

    raise typer.Exit(teardown(_console(api, region), cluster, namespace, app_name))


@app.command("list")
def list_command(
    api: ApiUrl,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster's apps.")] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace's (with --cluster).")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=100, help="Apps per page (the API's limit: 100).")] = 50,
    next_token: Annotated[str | None, typer.Option("--next-token", help="Go on from where a page ended.")] = None,
    every_page: Annotated[bool, typer.Option("--all", help="Read every page.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the API's JSON: apps and nextToken.")] = False,
    region: Region = None,
) -> None:
    """GET /apps on a deployed stack (SigV4-signed): the apps of its inventory, newest first (for administrators)."""
    from fargate_app_cli.remote_commands import list_apps

    console = _console(api, region)
    code = list_apps(
        console, cluster, namespace, limit=limit, next_token=next_token, every_page=every_page, as_json=as_json
    )
    raise typer.Exit(code)
