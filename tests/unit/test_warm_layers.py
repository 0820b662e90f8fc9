"""The layers of an image are pulled a few at a time (fargate_app/registry/warm.py); the first failure is the one
raised, even when a layer listed before it fails later."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

import pytest

from fargate_app.errors import ImageNotFound, RegistryUnavailable
from fargate_app.registry import warm
from fargate_app.registry.manifests import Descriptor

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FIRST, SECOND = (Descriptor(LAYER, f"sha256:{n * 64}", 10) for n in "ab")


class Registry:
    """warm_blob of a registry whose first layer fails only after the pool has reported the second's failure."""

    def __init__(self) -> None:
        self.first_failure_seen = threading.Event()

    def warm_blob(self, repository: str, layer: Descriptor) -> int:
        if layer is FIRST:
            self.first_failure_seen.wait(timeout=30)
            raise RegistryUnavailable(f"{repository}: {layer.digest} timed out")
        raise ImageNotFound(f"{repository}: {layer.digest} is gone")


def test_the_first_layer_to_fail_is_raised_not_the_first_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    registry, real_wait = Registry(), warm.wait

    def wait_then_release(futures: list[Future[Any]], return_when: str) -> Any:
        answer = real_wait(futures, return_when=return_when)
        registry.first_failure_seen.set()  # only now may the first layer fail: after the pool saw the second fail
        return answer

    monkeypatch.setattr(warm, "wait", wait_then_release)

    with pytest.raises(ImageNotFound) as raised:
        warm._warm_layers(registry, "ecr-public/nginx/nginx", [FIRST, SECOND], concurrency=2)  # type: ignore[arg-type]
    assert raised.value.message == f"ecr-public/nginx/nginx: {SECOND.digest} is gone"
