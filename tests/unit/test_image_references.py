"""Image references (fargate_app/images.py): distribution's grammar and Docker's normalisation, each refusal with
its exact rule, and the upstream registries ECR can cache."""

from __future__ import annotations

import pytest

from fargate_app.images import (
    InvalidReference,
    Upstream,
    parse_reference,
    upstream_for_host,
    upstream_for_registry_url,
)

HEX = "a" * 64
COMPONENT_RULE = "must be lowercase letters and digits separated by '.', '_', '__' or '-'"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must be a non-empty image reference without surrounding spaces"),
        # only the first '@' starts the digest: what follows it must be one digest
        (f"nginx@sha256:{HEX}@x", f"digest 'sha256:{HEX}@x' is not of the form algorithm:hex"),
        (f"nginx@sha512:{'a' * 128}", "digest algorithm 'sha512' is not supported: use a sha256 digest"),
        (f"nginx@sha256:{'A' * 64}", "a sha256 digest must be 64 lowercase hex characters"),
        # a ':' before the last '/' is no tag: the component holding it is refused
        ("host.io/a:b/c", f"repository component 'a:b' {COMPONENT_RULE}"),
        ("team/:1", f"repository component '' {COMPONENT_RULE}"),
        ("bad_host.io/app", "registry host 'bad_host.io' is not a valid domain[:port]"),
        ("public.ecr.aws/" + "r" * 241, "repository name must be at most 255 characters"),
    ],
    ids=["empty", "two-digests", "sha512", "uppercase-hex", "colon-in-path", "empty-component", "bad-host", "256"],
)
def test_each_refusal_says_its_rule(text: str, message: str) -> None:
    with pytest.raises(InvalidReference) as refused:
        parse_reference(text)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("localhost", "docker.io/library/localhost:latest"),  # one component: a repository, whatever its name
        ("localhost/app", "localhost/app:latest"),  # before a '/', localhost is a registry
        ("localhost:5000/team/app", "localhost:5000/team/app:latest"),  # a port is no tag
        ("public.ecr.aws/" + "r" * 240, "public.ecr.aws/" + "r" * 240 + ":latest"),  # 255 characters
    ],
)
def test_references_normalise_like_docker(text: str, normalised: str) -> None:
    assert str(parse_reference(text)) == normalised


def test_registries_ecr_caches_beyond_the_fixed_list() -> None:
    assert upstream_for_host("team.azurecr.io") == Upstream(
        "team.azurecr.io", "team.azurecr.io", "azure-container-registry", "azure", True
    )
    ecr = "444455556666.dkr.ecr.eu-west-1.amazonaws.com"
    assert upstream_for_host(ecr) == Upstream(ecr, ecr, "ecr", "ecr-444455556666", False)
    assert upstream_for_host("example.com") is None
    # a rule's upstream URL names them the same way
    assert upstream_for_registry_url("team.azurecr.io") == upstream_for_host("team.azurecr.io")
    assert upstream_for_registry_url("registry-1.docker.io") == upstream_for_host("docker.io")
