"""The CLI as a package of its own: `pip install .` gives a remote CLI that starts, without the sandbox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from fargate_app_cli.remote import SANDBOX_KEY, RemoteApi, RemoteConfigError
from fargate_app_cli.sandbox_state import (
    NoSandboxServing,
    SandboxAddress,
    forget_serving,
    running_env,
    write_state,
)
from fargate_sandbox.session import TEMPLATE_VARIABLE, SandboxStartError, find_template

ROOT = Path(__file__).resolve().parents[2]
SANDBOX_MODULES = {"fargate_sandbox", "kube_emulator", "moto", "boto3", "kubernetes", "aws_lambda_powertools"}


def test_the_remote_cli_imports_nothing_of_the_sandbox() -> None:
    # Given a fresh interpreter, When it imports the CLI and its remote commands
    code = (
        "import json, sys\n"
        "import fargate_app_cli.main, fargate_app_cli.remote_commands, fargate_app_cli.remote\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    loaded = set(json.loads(answer.stdout))

    # Then neither the sandbox nor what only the sandbox and the Lambda functions need was loaded
    assert "fargate_app_cli" in loaded
    assert loaded & SANDBOX_MODULES == set()


@pytest.mark.slow
def test_pip_install_gives_a_remote_cli_that_starts_and_names_the_sandbox_extra(tmp_path: Path) -> None:
    # Given a clean virtual environment with the project installed from a copy of its packages, without extras
    # (a copy: setuptools builds in the source folder, and the repository must not get a build/ from a test)
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source)
    for package in ("fargate_app_cli", "layers/core/fargate_app", "sandbox"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    environment = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        check=True,
        env=environment,
        cwd=tmp_path,
        capture_output=True,
    )
    cli = str(env_dir / "bin" / "fargate-app")

    # When its commands are asked for help, Then they answer
    for command in ([], ["request"], ["status"], ["teardown"]):
        answer = subprocess.run(
            [cli, *command, "--help"], capture_output=True, text=True, env=environment, cwd=tmp_path
        )
        assert answer.returncode == 0, answer.stderr
        assert "Usage" in answer.stdout

    # When the sandbox is asked for without its extra, Then it exits 1 and says what to install
    request = tmp_path / "nginx.json"
    request.write_text((ROOT / "examples" / "nginx.json").read_text())
    answer = subprocess.run(
        [cli, "sandbox", "run", "--request", str(request)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
    )
    assert answer.returncode == 1
    assert "pip install 'fargate-app-provisioner[sandbox]'" in answer.stderr


def test_the_sandbox_finds_the_template_in_the_current_folder_or_where_it_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no setting, When run from the project's folder, Then ./template.yaml is the template
    monkeypatch.delenv(TEMPLATE_VARIABLE, raising=False)
    monkeypatch.chdir(ROOT)
    assert find_template() == ROOT / "template.yaml"

    # When run from another folder, Then nothing is guessed: the error names the path and both ways to set it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SandboxStartError) as refused:
        find_template()
    assert str(tmp_path / "template.yaml") in str(refused.value)
    assert "--template" in str(refused.value) and TEMPLATE_VARIABLE in str(refused.value)

    # When the variable or the argument names it, Then that file is used
    monkeypatch.setenv(TEMPLATE_VARIABLE, str(ROOT / "template.yaml"))
    assert find_template() == ROOT / "template.yaml"
    assert find_template(ROOT / "template.yaml") == ROOT / "template.yaml"


@pytest.fixture
def no_aws_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_aws_configuration")
def test_a_loopback_api_without_aws_configuration_is_called_as_the_sandbox_administrator() -> None:
    # Given no AWS credentials or region anywhere, When the CLI is pointed at a sandbox serve's loopback API
    api = RemoteApi("http://127.0.0.1:8080")
    # Then it signs as the sandbox's administrator (the fixed, fake key serve prints) in the sandbox's region
    credentials = api.frozen_credentials()
    assert (credentials.access_key, credentials.secret_key, api.region) == (*SANDBOX_KEY, "us-west-2")


@pytest.mark.usefixtures("no_aws_configuration")
def test_a_deployed_api_without_aws_configuration_is_refused_naming_what_is_missing() -> None:
    with pytest.raises(RemoteConfigError, match="no AWS credentials found"):
        RemoteApi("https://abc123.execute-api.us-west-2.amazonaws.com/v1")


def test_the_state_folder_names_a_running_serve_until_it_stops(tmp_path: Path) -> None:
    # Given the files a serve writes
    address = SandboxAddress(
        aws_endpoint_url="http://127.0.0.1:1",
        access_key=SANDBOX_KEY[0],
        secret_key=SANDBOX_KEY[1],
        region="us-west-2",
        api_url="http://127.0.0.1:2",
        registry="127.0.0.1:3",
        cluster="blog",
        kubernetes_endpoint="https://127.0.0.1:4",
        kubernetes_ca_data="Q0E=",
    )
    env_file = write_state(tmp_path, address)
    # Then they are private to the user, the env names the kubeconfig, and the kubeconfig's token plugin carries the
    # sandbox's endpoint and key itself
    assert {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()} == {
        "env": 0o600,
        "kubeconfig": 0o600,
        "serve.pid": 0o600,
    }
    assert f"export KUBECONFIG={tmp_path / 'kubeconfig'}" in env_file.read_text().splitlines()
    plugin = json.loads((tmp_path / "kubeconfig").read_text())["users"][0]["user"]["exec"]
    assert plugin["args"] == ["-m", "fargate_app_cli", "sandbox", "token", "--cluster", "blog"]
    assert {"name": "AWS_ENDPOINT_URL", "value": "http://127.0.0.1:1"} in plugin["env"]
    assert running_env(tmp_path) == env_file.read_text()

    # When the serve stops, Then the files stay and no serve is reported
    forget_serving(tmp_path)
    assert env_file.is_file()
    with pytest.raises(NoSandboxServing, match="no sandbox serve is running"):
        running_env(tmp_path)

    # When the process that wrote them died without stopping, Then that is said too
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_state(tmp_path, address)
    (tmp_path / "serve.pid").write_text(ended.stdout)
    with pytest.raises(NoSandboxServing, match=rf"process {ended.stdout.strip()}\) has ended"):
        running_env(tmp_path)
