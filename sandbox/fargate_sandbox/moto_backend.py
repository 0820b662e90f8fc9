"""moto in server mode on a free loopback port, configured like the sandbox's AWS account.

moto picks the account per request: ``MOTO_ACCOUNT_ID`` in the environment first, then an ``x-moto-account-id``
header, then the access key, then 123456789012 (``moto/core/responses.py``, ``get_current_account``). The sandbox never
touches ``os.environ``: the AWS front adds the header to every forwarded request and the sandbox's own clients add it
too, so every caller, whatever its credentials, lands in account 111122223333.

Two moto switches are process-wide settings (``moto.core.config.default_user_config``, the dict ``mock_aws(config=…)``
and ``/moto-api/config`` write), set at start and restored on stop: ``stepfunctions.execute_state_machine`` (moto then runs ASL with
its interpreter in ``moto/stepfunctions/parser`` instead of returning canned executions; ``SF_EXECUTION_HISTORY_TYPE``
only shapes the canned ones) and ``iam.load_aws_managed_policies`` (the AWS managed policies such as
``AmazonEKSFargatePodExecutionRolePolicy`` exist, so ``AttachRolePolicy`` succeeds as in AWS).
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from typing import Any

import boto3
from botocore.config import Config
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

ACCOUNT_HEADER = "x-moto-account-id"
LOAD_AMIS = "MOTO_EC2_LOAD_DEFAULT_AMIS"  # moto.settings.ec2_load_default_amis
_werkzeug_log = logging.getLogger("werkzeug")
MOTO_SETTINGS = {"stepfunctions": {"execute_state_machine": True}, "iam": {"load_aws_managed_policies": True}}

SHARED_CLIENT_CONNECTIONS = 64


class MotoBackend:
    def __init__(self, account_id: str, region: str) -> None:
        self.account_id = account_id
        self.region = region
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._saved_config: Any = None
        self._saved_log_level = logging.NOTSET
        self._saved_amis: str | None = None
        self._session: boto3.session.Session | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.url = ""

    def start(self) -> None:
        self._saved_config = copy.deepcopy(default_user_config)
        # moto builds ~1,300 sample AMIs (and a volume each) when the EC2 backend is first made: 0.3 s of every
        # sandbox start for images nothing here runs. Its documented switch turns them off for this process.
        self._saved_amis = os.environ.get(LOAD_AMIS)
        os.environ[LOAD_AMIS] = "false"
        # moto's /moto-api/config endpoint does not accept the "iam" section, so both are set in process.
        default_user_config["stepfunctions"] = dict(MOTO_SETTINGS["stepfunctions"])  # type: ignore[typeddict-item]
        default_user_config["iam"] = dict(MOTO_SETTINGS["iam"])  # type: ignore[typeddict-item]
        _list_moto_modules_once()
        self._saved_log_level = _werkzeug_log.level
        _werkzeug_log.setLevel(logging.WARNING)  # one access-log line per AWS call drowns test output
        self._server.start()
        # socketserver's documented switches: track handler threads so server_close() joins them (no strays).
        wsgi_server: Any = self._server._server
        wsgi_server.daemon_threads = False
        wsgi_server.block_on_close = True
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self._session = boto3.session.Session(
            aws_access_key_id="sandbox",
            aws_secret_access_key="sandbox",  # noqa: S106 - moto checks no signature
            region_name=self.region,
        )
        self._load_managed_policies()

    def _load_managed_policies(self) -> None:
        """moto loads AWS-managed policies when an account's IAM backend is first made; if something in this process
        (a test with mock_aws, an earlier sandbox) made it before the setting was on, load them now."""
        from moto.iam.models import iam_backends

        backend = iam_backends[self.account_id]["global"]
        if not backend.aws_managed_policies:
            backend.aws_managed_policies = backend._init_aws_policies()
            for policy in backend.aws_managed_policies:
                backend.managed_policies.setdefault(policy.arn, policy)

    def stop(self) -> None:
        with self._clients_lock:
            self._clients.clear()
        self._server.stop()
        wsgi_server: Any = self._server._server
        if wsgi_server is not None:
            wsgi_server.server_close()
        if self._saved_config is not None:
            config: dict[str, Any] = default_user_config  # type: ignore[assignment]
            config.clear()
            config.update(self._saved_config)
        _werkzeug_log.setLevel(self._saved_log_level)
        if self._saved_amis is None:
            os.environ.pop(LOAD_AMIS, None)
        else:
            os.environ[LOAD_AMIS] = self._saved_amis

    def client(self, service: str) -> Any:
        """A boto3 client that talks to moto directly (bypassing the front's rules), in the sandbox account.

        One per service, made once: the front's rules and IAM checks call this for most requests, and building a
        client (its service model, its event hooks) cost more than the call it makes when many executions run.
        botocore's clients are thread-safe (boto3 guide, "Multithreading or multiprocessing with clients")."""
        with self._clients_lock:
            client = self._clients.get(service)
            if client is None:
                assert self._session is not None, "start() first"
                # Every handler thread of the fronts shares it: a pool of botocore's default 10 would discard
                # (and log) the connections of a burst past the tenth.
                config = Config(retries={"max_attempts": 1}, max_pool_connections=SHARED_CLIENT_CONNECTIONS)
                client = self._session.client(  # type: ignore[call-overload]
                    service, endpoint_url=self.url, config=config
                )
                client.meta.events.register("before-send", self._add_account_header)
                self._clients[service] = client
            return client

    def _add_account_header(self, request: Any, **_: Any) -> None:
        request.headers[ACCOUNT_HEADER] = self.account_id


def _list_moto_modules_once() -> None:
    """moto's server finds a request's backend by listing its own package directory (about 200 ``isdir`` calls) for
    every request that names no host it knows, under its dispatcher's lock; the list never changes in a process."""
    from moto import backends

    if getattr(backends.list_of_moto_modules, "listed_once", False):
        return
    modules = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return modules

    list_of_moto_modules.listed_once = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules
