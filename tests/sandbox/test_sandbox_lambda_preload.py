"""The Lambda workers' forkserver reads botocore's data once: a worker forked from it makes the functions' clients
without reading a JSON file of botocore again."""

from __future__ import annotations

from typing import Any

import botocore.loaders
import botocore.session
import pytest

from fargate_sandbox import botocore_preload, lambda_dispatch


def test_the_forkserver_preloads_botocore_data() -> None:
    assert "fargate_sandbox.botocore_preload" in lambda_dispatch.PRELOAD


def test_the_functions_clients_are_made_without_reading_botocore_data_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a process whose sessions each read botocore's data (as a worker's would), then the preload done in it (as
    # the forkserver does before it forks a worker)
    monkeypatch.setattr(botocore.session, "create_loader", botocore.loaders.create_loader)
    botocore_preload.share_one_loader()
    reads: list[str] = []
    load_file = botocore.loaders.JSONFileLoader.load_file

    def counted(self: Any, file_path: str) -> Any:
        reads.append(file_path)
        return load_file(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", counted)
    # When a worker's new session makes each client a function uses
    session = botocore.session.get_session()
    for service in botocore_preload.SERVICES:
        session.create_client(service, region_name="us-west-2", aws_access_key_id="a", aws_secret_access_key="b")
    # Then nothing was read from disk again
    assert reads == []


def test_the_sandbox_process_shares_one_loader_once_made(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a process whose sessions each read botocore's data
    monkeypatch.setattr(botocore.session, "create_loader", botocore.loaders.create_loader)

    # When a sandbox is made (twice: sharing is set up once), then sessions as moto and the harness make them
    from fargate_sandbox.sandbox import Sandbox

    Sandbox(seed_registries=False)
    shared = botocore.session.create_loader
    Sandbox(seed_registries=False)
    loaders = {id(botocore.session.get_session().get_component("data_loader")) for _ in range(3)}

    # Then every session reads through the same loader, and the second sandbox did not wrap it again
    assert botocore.session.create_loader is shared
    assert len(loaders) == 1
