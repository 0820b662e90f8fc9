"""The EKS token: what the API server decodes from it must be a presigned GetCallerIdentity bound to the cluster."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from fargate_app.errors import PermanentError
from fargate_app.kube.auth import PRESIGN_EXPIRES_SECONDS, TOKEN_PREFIX, eks_token, reset_sts_clients

ACCESS_KEY, SECRET_KEY = "AKIAUNITTESTKUBEAUTH", "unit-test-secret"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    reset_sts_clients()  # a cached client keeps the credentials it resolved first


def decode_token(token: str) -> str:
    """What an API server does first (aws-iam-authenticator ``pkg/token/token.go``): strip the prefix, then
    base64url-decode the unpadded rest."""
    assert token.startswith(TOKEN_PREFIX)
    payload = token.removeprefix(TOKEN_PREFIX)
    return base64.b64decode(payload + "=" * (-len(payload) % 4), altchars=b"-_", validate=True).decode()


def test_the_token_is_an_unpadded_base64url_presigned_get_caller_identity():
    # When a token is made for cluster "blog" in eu-west-3 (not the environment's region, us-west-2)
    token = eks_token("blog", "eu-west-3")

    # Then it is k8s-aws-v1. + unpadded base64url of that region's STS URL presigned for 60 s
    assert token.value.startswith(TOKEN_PREFIX)
    assert "=" not in token.value and "+" not in token.value and "/" not in token.value
    url = urlsplit(decode_token(token.value))
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert (url.scheme, url.netloc, url.path) == ("https", "sts.eu-west-3.amazonaws.com", "/")
    assert query["Action"] == "GetCallerIdentity"
    assert query["X-Amz-Expires"] == str(PRESIGN_EXPIRES_SECONDS) == "60"
    assert query["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert "/eu-west-3/sts/aws4_request" in query["X-Amz-Credential"]
    # The cluster name is a signed header, not a query parameter: only a server that sends the same value verifies
    assert query["X-Amz-SignedHeaders"].split(";") == ["host", "x-k8s-aws-id"]
    assert "blog" not in url.query


def test_the_cluster_name_is_bound_by_the_signature():
    # Given the emulator's local SigV4 verifier with the same credentials
    from kube_emulator.auth import EksTokenAuthenticator, SignatureVerifier

    verifier = SignatureVerifier(lambda key: SECRET_KEY if key == ACCESS_KEY else None, lambda key: "arn:caller")
    token = eks_token("blog", "us-west-2").value

    # Then the token authenticates against cluster "blog" and not against cluster "shop"
    assert EksTokenAuthenticator("blog", verifier).authenticate(token) is not None
    assert EksTokenAuthenticator("shop", verifier).authenticate(token) is None


def test_the_token_value_never_shows_in_its_repr():
    token = eks_token("blog", "us-west-2")
    assert token.value not in repr(token)
    assert "k8s-aws-v1" not in repr(token)


@pytest.mark.parametrize(
    ("url", "token"),
    [
        # a URL whose base64url ends in "X" (and holds "_"): only "=" padding may be stripped
        ("https://sts.example/?n=W", "k8s-aws-v1.aHR0cHM6Ly9zdHMuZXhhbXBsZS8_bj1X"),
        ("https://sts.example/?n=aW", "k8s-aws-v1.aHR0cHM6Ly9zdHMuZXhhbXBsZS8_bj1hVw"),  # "==" stripped
    ],
)
def test_the_token_encodes_the_presigned_url_exactly(monkeypatch: pytest.MonkeyPatch, url: str, token: str) -> None:
    monkeypatch.setattr("fargate_app.kube.auth.presigned_identity_url", lambda cluster, region: url)
    assert eks_token("blog", "us-west-2").value == token


def test_no_credentials_is_a_permanent_error_naming_the_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given no credentials anywhere botocore looks (environment, files, instance metadata)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_WEB_IDENTITY_TOKEN_FILE", raising=False)
    reset_sts_clients()

    # Then making a token fails for good, saying what it was doing
    with pytest.raises(PermanentError) as failed:
        eks_token("blog", "us-west-2")
    assert failed.value.message.startswith("presign an STS GetCallerIdentity token for EKS cluster blog: ")
