"""What ``sandbox serve`` leaves for other tools: ``DIR/env`` (export lines) and ``DIR/kubeconfig``.

The kubeconfig authenticates as EKS clusters do with ``aws eks update-kubeconfig``: an ``exec`` credential plugin
mints a fresh EKS token (a presigned STS GetCallerIdentity, ``fargate_app.kube.auth``) whenever kubectl needs one, so
it never expires mid-session. The plugin is this CLI (``python -m fargate_app_cli sandbox token``), given the
sandbox's endpoint and key in its own ``env``: kubectl works whether or not ``DIR/env`` was sourced.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"
PID_FILE = "serve.pid"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/fargate-app/sandbox`` (``~/.local/state/…`` without it), as the XDG base directories say."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fargate-app" / "sandbox"


@dataclass(frozen=True)
class SandboxAddress:
    """Where a running sandbox answers, and as whom to call it."""

    aws_endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    api_url: str
    registry: str  # host:port of the private registry (what repositoryUri's host stands for)
    cluster: str
    kubernetes_endpoint: str
    kubernetes_ca_data: str  # base64 PEM, as DescribeCluster returns it

    def aws_variables(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }

    def env_lines(self, state_dir: Path) -> list[str]:
        variables = {
            **self.aws_variables(),
            "KUBECONFIG": str(state_dir / "kubeconfig"),
            "FARGATE_APP_API": self.api_url,
            "FARGATE_APP_REGISTRY": self.registry,
        }
        return [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]

    def kubeconfig(self) -> dict[str, object]:
        """A kubeconfig (JSON is YAML) for the cluster, authenticated by the token plugin."""
        user = f"{self.cluster}-sandbox-administrator"
        plugin = {
            "apiVersion": EXEC_API_VERSION,
            "command": sys.executable,
            "args": ["-m", "fargate_app_cli", "sandbox", "token", "--cluster", self.cluster],
            "env": [{"name": name, "value": value} for name, value in self.aws_variables().items()],
            "interactiveMode": "Never",
        }
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": self.cluster,
                    "cluster": {
                        "server": self.kubernetes_endpoint,
                        "certificate-authority-data": self.kubernetes_ca_data,
                    },
                }
            ],
            "users": [{"name": user, "user": {"exec": plugin}}],
            "contexts": [{"name": self.cluster, "context": {"cluster": self.cluster, "user": user}}],
            "current-context": self.cluster,
        }


def write_state(state_dir: Path, address: SandboxAddress) -> Path:
    """Write ``env``, ``kubeconfig`` and the serving process's id; returns the env file. The files hold only the
    sandbox's fixed, fake key, but stay private to the user (0600) as credentials files should."""
    state_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "kubeconfig": json.dumps(address.kubeconfig(), indent=2) + "\n",
        "env": "\n".join(address.env_lines(state_dir)) + "\n",
        PID_FILE: f"{os.getpid()}\n",
    }
    for name, text in files.items():
        path = state_dir / name
        path.write_text(text)
        path.chmod(0o600)
    return state_dir / "env"


def forget_serving(state_dir: Path) -> None:
    """The serve stopped: its files stay readable, but ``sandbox env`` no longer reports them as running."""
    (state_dir / PID_FILE).unlink(missing_ok=True)


class NoSandboxServing(Exception):
    """No ``sandbox serve`` is running with this state folder."""


def running_env(state_dir: Path) -> str:
    """The env file of the serve running with ``state_dir``.

    Raises:
        NoSandboxServing: nothing was served from it, or the process that wrote it has ended.
    """
    try:
        pid = int((state_dir / PID_FILE).read_text())
        env = (state_dir / "env").read_text()
    except (OSError, ValueError):
        raise NoSandboxServing(f"no sandbox serve is running with state folder {state_dir}") from None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise NoSandboxServing(f"the sandbox serve that wrote {state_dir / 'env'} (process {pid}) has ended") from None
    except PermissionError:
        pass  # alive, another user's
    return env
