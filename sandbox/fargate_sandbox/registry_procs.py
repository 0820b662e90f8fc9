"""Real CNCF distribution registries (Debian's ``docker-registry``, distribution 2.8) as child processes.

Two roles, each one process on a free loopback port with its own config file and storage under a directory the
caller owns:

- an *upstream* registry: plain HTTP, filesystem storage, optionally htpasswd Basic auth (a credentialed upstream
  such as Docker Hub or GitHub);
- a *pull-through proxy* (``proxy.remoteurl``): what an ECR cache rule is, with htpasswd Basic auth in front so
  that clients authenticate the way they do against ECR (user ``AWS``, the token's password).

Processes run in their own process group and are killed as a group on stop; ``RegistryProcess`` is a context
manager, and a process that fails to become ready is killed before the error is raised, so none outlives its owner.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

REGISTRY_BINARY = os.environ.get("FARGATE_SANDBOX_REGISTRY_BINARY", "/usr/bin/docker-registry")
READY_TIMEOUT_SECONDS = 15.0
# Loopback only: never through an HTTP(S)_PROXY the environment may set.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
STOP_TIMEOUT_SECONDS = 5.0
_ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>/\S*) HTTP/[0-9.]+"')
_START_ATTEMPTS = 3  # a free port can be taken by someone else between our probe and the registry's bind


class RegistryStartError(RuntimeError):
    """The registry process exited or never answered GET /v2/; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    """An htpasswd file with bcrypt hashes, the only scheme distribution's htpasswd auth accepts."""
    import bcrypt  # a sandbox/test dependency only

    lines = [
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"
        for user, password in users.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@dataclass
class RegistryProcess:
    """One running registry. ``url`` is ``http://127.0.0.1:<port>``; ``storage`` its filesystem root."""

    name: str
    workdir: Path
    storage: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        """Everything the registry wrote: its logrus lines and (on stdout) the combined access log."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def requests(self, methods: tuple[str, ...] = ("GET", "HEAD")) -> list[str]:
        """The paths requested with ``methods``, in order, from the access log (combined log format on stdout)."""
        return [match["path"] for match in _ACCESS_LINE.finditer(self.log()) if match["method"] in methods]

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers; idempotent."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- what the registry holds on disk (distribution's storage layout, registry/storage/paths.go) ---
    def _repository_dir(self, repository: str) -> Path:
        return self.storage / "docker/registry/v2/repositories" / repository

    def has_manifest(self, repository: str, digest: str) -> bool:
        algorithm, hex_digest = digest.split(":", 1)
        return (self._repository_dir(repository) / "_manifests/revisions" / algorithm / hex_digest / "link").is_file()

    def has_blob(self, repository: str, digest: str) -> bool:
        """True when the repository links the blob, which is what the registry needs to serve it."""
        algorithm, hex_digest = digest.split(":", 1)
        return (self._repository_dir(repository) / "_layers" / algorithm / hex_digest / "link").is_file()

    def tags(self, repository: str) -> list[str]:
        tags_dir = self._repository_dir(repository) / "_manifests/tags"
        return sorted(p.name for p in tags_dir.iterdir()) if tags_dir.is_dir() else []

    def wait_for_blobs(self, repository: str, digests: list[str], timeout: float = 10.0) -> None:
        """Wait until the repository links every blob.

        A pull-through proxy streams a blob to the client and, concurrently, fetches it again to store it
        (``proxyBlobStore.ServeBlob`` starts ``storeLocal`` in a goroutine), so a finished pull does not yet mean
        a stored blob. Raises TimeoutError naming the missing ones.
        """
        deadline = time.monotonic() + timeout
        while True:
            missing = [d for d in digests if not self.has_blob(repository, d)]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: blobs {missing} not stored under {repository} after {timeout}s")
            time.sleep(0.02)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)  # start_new_session=True: the group id is the child's pid


def _config(port: int, storage: Path, *, htpasswd: Path | None, proxy: dict[str, str] | None) -> dict[str, object]:
    """distribution's configuration (docs/configuration.md). JSON is YAML, so no YAML writer is needed."""
    config: dict[str, object] = {
        "version": "0.1",
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "fargate-sandbox", "path": str(htpasswd)}}
    if proxy is not None:
        config["proxy"] = proxy
    return config


def start_registry(
    workdir: Path,
    name: str,
    *,
    htpasswd_users: Mapping[str, str] | None = None,
    proxy: dict[str, str] | None = None,
    ready_timeout: float = READY_TIMEOUT_SECONDS,
) -> RegistryProcess:
    """Start one registry with its config, storage and log under ``workdir / name``; return once GET /v2/ answers.

    Raises:
        RegistryStartError: the binary is missing, the process exited, or it never answered.
    """
    if not os.access(REGISTRY_BINARY, os.X_OK):
        raise RegistryStartError(f"{REGISTRY_BINARY} is missing: install Debian's docker-registry (make registry-bin)")
    home = workdir / name
    storage = home / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    htpasswd = write_htpasswd(home / "htpasswd", htpasswd_users) if htpasswd_users else None
    # distribution reads REGISTRY_* variables as config overrides; none of the caller's may leak in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("REGISTRY_")}
    last_error = ""
    for _ in range(_START_ATTEMPTS):
        port = free_port()
        config_path = home / "config.yml"
        config_path.write_text(json.dumps(_config(port, storage, htpasswd=htpasswd, proxy=proxy), indent=2))
        log_path = home / "registry.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        registry = RegistryProcess(
            name=name, workdir=home, storage=storage, port=port, process=process, log_path=log_path
        )
        try:
            if _wait_ready(registry, ready_timeout):
                return registry
        except BaseException:
            registry.stop()
            raise
        registry.stop()
        last_error = registry.log()[-2000:]
    raise RegistryStartError(
        f"registry {name} did not start after {_START_ATTEMPTS} attempts; its log ends:\n{last_error}"
    )


def _wait_ready(registry: RegistryProcess, timeout: float) -> bool:
    """True once the process logged its own bind and GET /v2/ answers 200 (open) or 401 (auth required).

    The log line matters under parallel tests: if another process took the port first, /v2/ could answer for it
    while ours exits with "address already in use". False if the process died or time ran out.
    """
    bound = f"listening on 127.0.0.1:{registry.port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not registry.running:
            return False
        if bound in registry.log():
            try:
                with _DIRECT.open(registry.url + "/v2/", timeout=1) as answer:
                    if answer.status == 200:
                        return True
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return True
            except OSError:
                pass
        time.sleep(0.02)
    return False


def start_upstream(
    workdir: Path, *, name: str = "upstream", htpasswd_users: Mapping[str, str] | None = None
) -> RegistryProcess:
    """A plain-HTTP registry to push images into; with ``htpasswd_users`` it demands Basic auth (a credentialed
    upstream such as Docker Hub)."""
    return start_registry(workdir, name, htpasswd_users=htpasswd_users)


def start_proxy(
    workdir: Path,
    remote_url: str,
    *,
    name: str = "proxy",
    htpasswd_users: Mapping[str, str] | None = None,
    remote_credentials: tuple[str, str] | None = None,
) -> RegistryProcess:
    """A pull-through cache of ``remote_url``; ``remote_credentials`` (user, password) are what it presents
    upstream (the cache rule's Secrets Manager credential), ``htpasswd_users`` who may pull from it."""
    proxy = {"remoteurl": remote_url}
    if remote_credentials is not None:
        proxy["username"], proxy["password"] = remote_credentials
    return start_registry(workdir, name, htpasswd_users=htpasswd_users, proxy=proxy)
