"""Shared fixtures. The environment is the one template.yaml gives the functions, with fake credentials:
set at import, before any test imports boto3, and never changed per test (handlers run in threads too)."""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-west-2"
ACCOUNT = "111122223333"

for key, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "ACCOUNT_ID": ACCOUNT,
    "MOTO_ACCOUNT_ID": ACCOUNT,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "fargate-app-provisioner-tests",
    "POWERTOOLS_DEV": "false",
    "APPS_TABLE_NAME": "fargate-app-provisioner-apps",  # tests/project_template.py APPS_TABLE
    "HOLDERS_TABLE_NAME": "fargate-app-provisioner-holders",  # tests/project_template.py HOLDERS_TABLE
    # moto's documented switch against the ~1,300 sample AMIs it builds with each EC2 backend (0.3 s per region and
    # account, four times in a test that makes a VPC): nothing here runs an instance.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}.items():
    os.environ[key] = value
os.environ.pop("AWS_PROFILE", None)


def _share_botocore_data() -> None:
    """One botocore data loader for every session this process makes.

    Tests start from a fresh session (``reset_clients``, moto's mocks, boto3's default session), and each new session
    reads botocore's JSON models and endpoints again: about half of a moto unit test's time. The loader caches what it
    read per instance and the data is read-only, so one instance can serve every session."""
    import botocore.loaders
    import botocore.session

    shared = functools.cache(botocore.loaders.create_loader)
    botocore.session.create_loader = shared  # botocore.session imported the name


_share_botocore_data()

from figures import FIGURES, Figures, record_outcome, write_results  # noqa: E402

from fargate_app.aws.clients import reset_clients  # noqa: E402
from fargate_app.config import Settings, get_settings, reset_settings  # noqa: E402


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Fail the run when ``--dist loadgroup`` would ignore our ``xdist_group`` marks.

    pytest-xdist groups by a ``@<group>`` suffix its worker adds to each node id; with pytest 9.2 the suffix silently
    stops being added (pytest-dev/pytest-xdist#1386). Tests then scatter over the workers: every module-scoped sandbox
    is built again wherever its tests land, and the iam and reliability groups no longer share theirs."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or "loadgroup" not in " ".join(workerinput.get("mainargv", [])):
        return
    grouped = [item for item in items if item.get_closest_marker("xdist_group")]
    if grouped and not any("@" in item.nodeid for item in grouped):
        raise pytest.UsageError(
            "--dist loadgroup is not grouping tests (no '@<group>' node id suffix): use a pytest that pytest-xdist "
            "supports (requirements-dev.in)"
        )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    record_outcome(report)


def pytest_sessionfinish(session: pytest.Session) -> None:
    scan = session.config.pluginmanager.get_plugin("reliability-secret-scan")
    statistics = None
    if scan is not None:
        scan.unregister()
        statistics = sys.modules["reliability_secret_scan"].statistics().to_json()
    write_results(statistics)


@pytest.fixture(scope="session")
def figures() -> Figures:
    """Rows for docs/reliability.md (tests/figures.py): record what was observed, then assert on it."""
    return FIGURES


@pytest.fixture(scope="session")
def burst_lock(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Any]:
    """A context manager that holds a lock shared by the pytest-xdist workers of this run.

    A few tests start many executions or sandboxes at once (twenty apps together, the CLI's concurrent runs). On the
    two cores this suite is meant for, two such bursts side by side starve each other's Lambda functions past their
    timeouts; holding this lock keeps the bursts apart while everything else still runs on both workers."""
    base = tmp_path_factory.getbasetemp()
    # xdist gives each worker basetemp/popen-gwN: the lock file sits in the run's shared directory above.
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = shared / "burst.lock"

    @contextmanager
    def held() -> Iterator[None]:
        with path.open("a") as file:  # closing the file releases the lock
            fcntl.flock(file, fcntl.LOCK_EX)
            yield

    return held


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Each test reads the environment it set up, never settings an earlier test left cached in this worker."""
    reset_settings()
    yield
    reset_settings()


@pytest.fixture
def settings() -> Settings:
    return get_settings()


# A sandbox in the same test process turns on moto's Step Functions interpreter process-wide; unit tests want
# moto's plain executions (that stay RUNNING), whatever ran before them in the worker.
UNIT_MOTO_CONFIG: dict[str, Any] = {"stepfunctions": {"execute_state_machine": False}}


def _with_inventory() -> None:
    """The stack's app inventory and holders tables, in moto (ValidateRequest and the API read the inventory; the
    ensure steps, teardown and compensation write the holders)."""
    import boto3
    from project_template import APPS_TABLE, HOLDERS_TABLE

    boto3.client("dynamodb").create_table(**APPS_TABLE)
    boto3.client("dynamodb").create_table(**HOLDERS_TABLE)


@pytest.fixture
def aws() -> Iterator[None]:
    """moto for every AWS call, with the stack's inventory table."""
    from moto import mock_aws

    reset_clients()
    with mock_aws(config=UNIT_MOTO_CONFIG):
        _with_inventory()
        yield
    reset_clients()


@pytest.fixture
def aws_iam() -> Iterator[None]:
    """moto with IAM's AWS-managed policies loaded (the role step attaches one; loading them takes a second)."""
    from moto import mock_aws

    reset_clients()
    with mock_aws(config={**UNIT_MOTO_CONFIG, "iam": {"load_aws_managed_policies": True}}):
        _with_inventory()
        yield
    reset_clients()


def load_handler(function_dir: str) -> ModuleType:
    """Import functions/<dir>/app.py under a unique module name (every function folder has an app.py)."""
    path = ROOT / "functions" / function_dir / "app.py"
    name = f"handler_{function_dir}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def lambda_context() -> Any:
    class Context:
        function_name = "test-function"
        memory_limit_in_mb = 128
        invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
        aws_request_id = "00000000-0000-0000-0000-000000000000"

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 60_000

    return Context()


@pytest.fixture
def handler() -> Callable[[str], ModuleType]:
    return load_handler
