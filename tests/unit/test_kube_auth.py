"""The EKS token: what the API server decodes from it must be a presigned GetCallerIdentity bound to the cluster."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from fargate_app.kube.auth import (
    PRESIGN_EXPIRES_SECONDS,
    TOKEN_PREFIX,
    decode_token,
    eks_token,
    reset_sts_clients,
)

ACCESS_KEY, SECRET_KEY = "AKIAUNITTESTKUBEAUTH", "unit-test-secret"


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_STS", raising=False)
    reset_sts_clients()  # a cached client keeps the credentials it resolved first


def test_the_token_is_an_unpadded_base64url_presigned_get_caller_identity():
    # When a token is made for cluster "blog" in us-west-2
    token = eks_token("blog", "us-west-2")

    # Then it is k8s-aws-v1. + unpadded base64url of a regional STS URL presigned for 60 s
    assert token.value.startswith(TOKEN_PREFIX)
    assert "=" not in token.value and "+" not in token.value and "/" not in token.value
    url = urlsplit(decode_token(token.value))
    query = {key: values[0] for key, values in parse_qs(url.query).items()}
    assert (url.scheme, url.netloc, url.path) == ("https", "sts.us-west-2.amazonaws.com", "/")
    assert query["Action"] == "GetCallerIdentity"
    assert query["X-Amz-Expires"] == str(PRESIGN_EXPIRES_SECONDS) == "60"
    assert query["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert "/us-west-2/sts/aws4_request" in query["X-Amz-Credential"]
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


@pytest.mark.parametrize("bad", ["Bearer abc", "k8s-aws-v1.%%%", "k8s-aws-v1.\u00e9"])
def test_what_is_not_a_token_is_rejected(bad):
    with pytest.raises(ValueError, match="not an EKS token"):
        decode_token(bad)
