"""Helpers of the CLI tests: the real ``fargate-app`` entry point as a subprocess, and an HTTP server that checks
SigV4 signatures the way API Gateway does — by recomputing them with botocore's signer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, BinaryIO

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
# The console script pip installed next to this interpreter: the entry point users run.
FARGATE_APP = str(Path(sys.executable).parent / "fargate-app")


def cli_environment(**overrides: str) -> dict[str, str]:
    """This process's environment without AWS/Powertools settings a sandbox harness of this worker may have left."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_", "MOTO_"))}
    clean.update({"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **overrides})
    return clean


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Background:
    """``fargate-app …`` started now, its output in files (no pipe can fill up and stall it)."""

    def __init__(self, args: list[str], workdir: Path, env: dict[str, str] | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self._out: BinaryIO = (workdir / "stdout").open("w+b")
        self._err: BinaryIO = (workdir / "stderr").open("w+b")
        self.process = subprocess.Popen(
            [FARGATE_APP, *args], cwd=ROOT, stdout=self._out, stderr=self._err, env=env or cli_environment()
        )

    def finish(self, timeout: float) -> Finished:
        try:
            self.process.wait(timeout)
        finally:
            self.stop()
        self._out.seek(0)
        self._err.seek(0)
        return Finished(self.process.returncode, self._out.read().decode(), self._err.read().decode())

    def stop(self) -> None:
        """SIGTERM (the CLI stops its sandbox on it), then SIGKILL if it does not end."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> Finished:
    answer = subprocess.run(
        [FARGATE_APP, *args], cwd=ROOT, capture_output=True, text=True, env=env or cli_environment(), timeout=timeout
    )
    return Finished(answer.returncode, answer.stdout, answer.stderr)


@dataclass
class ReceivedCall:
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    signature_valid: bool
    scope: str


@dataclass
class SigV4CheckingApi:
    """A stand-in for API Gateway with ``AWS_IAM`` auth: 403 unless the request's SigV4 signature, recomputed with
    the expected credentials, matches; otherwise ``answer(method, path, body)`` → (status, JSON document)."""

    access_key: str
    secret_key: str
    answer: Callable[[str, str, bytes], tuple[int, Any]]
    calls: list[ReceivedCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        checker = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                call = checker.verify(self.command, self.path, dict(self.headers.items()), body)
                checker.calls.append(call)
                status, document = (
                    checker.answer(call.method, call.path, body)
                    if call.signature_valid
                    else (
                        403,
                        {"message": "The request signature we calculated does not match the signature you provided."},
                    )
                )
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/prod"

    def __enter__(self) -> SigV4CheckingApi:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def verify(self, method: str, path: str, headers: dict[str, str], body: bytes) -> ReceivedCall:
        """Recompute the signature over exactly the headers the client signed, at the time it signed."""
        authorization = headers.get("Authorization", "")
        fields = dict(
            part.strip().split("=", 1)
            for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(",")
            if "=" in part
        )
        credential = fields.get("Credential", "")
        access_key, _, scope = credential.partition("/")
        _date, region, service, _terminator = [*scope.split("/"), "", "", "", ""][:4]
        signed_names = fields.get("SignedHeaders", "").split(";")
        by_name = {name.lower(): value for name, value in headers.items()}
        request = AWSRequest(
            method=method,
            url=f"http://{by_name.get('host', '')}{path}",
            data=body,
            headers={name: by_name.get(name, "") for name in signed_names if name},
        )
        request.context["timestamp"] = by_name.get("x-amz-date", "")
        signer = SigV4Auth(
            Credentials(self.access_key, self.secret_key, by_name.get("x-amz-security-token")), service, region
        )
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        valid = access_key == self.access_key and service == "execute-api" and expected == fields.get("Signature")
        return ReceivedCall(method, path, body, headers, valid, scope)
