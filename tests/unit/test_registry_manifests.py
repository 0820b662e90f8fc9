"""Manifest parsing as the registry serves it (fargate_app/registry/manifests.py): every malformed descriptor refused
with a message that says where and what, the descriptors that OCI allows accepted (image-spec, descriptor.md: size
is a non-negative int64, platform only means something on an index entry)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fargate_app.errors import ManifestInvalid, PlatformNotAvailable
from fargate_app.registry.manifests import (
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    check_config_platform,
    parse_manifest,
    select_platform,
    sha256_digest,
    verify_manifest_digest,
)
from fargate_sandbox.oci_images import build_index, sample_image

DIGEST = "sha256:" + "1" * 64
LAYER = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + "2" * 64, "size": 7}
SCHEMA1_HINT = "expected an OCI or Docker v2 image manifest or index (legacy schema1 images cannot run on EKS Fargate's containerd)"


def parsed(document: dict[str, Any], content_type: str | None = None) -> ImageIndex | ImageManifest:
    body = json.dumps(document).encode()
    return parse_manifest(body, content_type, sha256_digest(body), "image x")


def image_with_config(config: Any) -> dict[str, Any]:
    return {"mediaType": OCI_MANIFEST, "config": config, "layers": [LAYER]}


def refusal(document: dict[str, Any], content_type: str | None = None) -> str:
    with pytest.raises(ManifestInvalid) as refused:
        parsed(document, content_type)
    return str(refused.value)


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        ("sha256:abc", "image x: a descriptor is not a JSON object"),
        (
            {"digest": "../../etc", "size": 1, "mediaType": "x"},
            "image x: descriptor digest '../../etc' is not a sha256 digest",
        ),
        (
            {"digest": "sha256:" + "f" * 100, "size": 1, "mediaType": "x"},
            f"image x: descriptor digest '{('sha256:' + 'f' * 100)[:79]}…' is not a sha256 digest",
        ),
        ({"digest": DIGEST, "size": -1, "mediaType": "x"}, f"image x: descriptor {DIGEST} has no valid size"),
        ({"digest": DIGEST, "size": True, "mediaType": "x"}, f"image x: descriptor {DIGEST} has no valid size"),
        ({"digest": DIGEST, "size": "12", "mediaType": "x"}, f"image x: descriptor {DIGEST} has no valid size"),
        ({"digest": DIGEST, "mediaType": "x"}, f"image x: descriptor {DIGEST} has no valid size"),
        ({"digest": DIGEST, "size": 1}, f"image x: descriptor {DIGEST} has no mediaType"),
    ],
)
def test_a_malformed_descriptor_is_refused_saying_which_and_why(config: Any, complaint: str) -> None:
    assert refusal(image_with_config(config)) == complaint


def test_an_empty_blob_is_a_valid_descriptor_and_an_image_s_descriptors_have_no_platform() -> None:
    # Given an image whose config is empty (size 0: OCI's empty descriptor) and whose layer names a platform
    config = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": DIGEST, "size": 0}
    layer = {**LAYER, "platform": {"os": "linux", "architecture": "amd64"}}
    # When it is parsed, Then both are read as they are, without a platform (only an index entry selects one)
    image = parsed({"mediaType": OCI_MANIFEST, "config": config, "layers": [layer]})
    assert isinstance(image, ImageManifest)
    assert (image.config, image.layers) == (
        Descriptor("application/vnd.oci.empty.v1+json", DIGEST, 0, None),
        (Descriptor(LAYER["mediaType"], LAYER["digest"], 7, None),),
    )


@pytest.mark.parametrize(
    ("platform", "expected"),
    [
        ({"os": "linux", "architecture": "arm64", "variant": "v8"}, Platform("linux", "arm64", "v8")),
        ({"os": "linux", "architecture": "amd64", "variant": ""}, Platform("linux", "amd64")),
        ({"os": "linux", "architecture": "amd64", "variant": 8}, Platform("linux", "amd64")),
        ({"os": "linux"}, None),
        ({"architecture": "amd64"}, None),
        ("linux/amd64", None),
    ],
)
def test_an_index_entry_s_platform_is_read_only_when_it_names_os_and_architecture(
    platform: Any, expected: Platform | None
) -> None:
    index = parsed({"mediaType": OCI_INDEX, "manifests": [{**LAYER, "mediaType": OCI_MANIFEST, "platform": platform}]})
    assert isinstance(index, ImageIndex)
    assert [entry.platform for entry in index.manifests] == [expected]


@pytest.mark.parametrize(
    ("document", "content_type", "complaint"),
    [
        ({"mediaType": OCI_INDEX, "manifests": {}}, None, "image x: the image index has no manifests list"),
        ({"mediaType": OCI_MANIFEST, "config": LAYER}, None, "image x: the image manifest has no layers list"),
        ({"mediaType": OCI_INDEX, "manifests": ["x"]}, None, "image x: a descriptor is not a JSON object"),
        (image_with_config(None), None, "image x: a descriptor is not a JSON object"),
        (
            {"mediaType": OCI_MANIFEST, "config": LAYER, "layers": [{**LAYER, "size": -1}]},
            None,
            f"image x: descriptor {LAYER['digest']} has no valid size",
        ),
        ({"schemaVersion": 2}, None, f"image x: unsupported manifest media type ''; {SCHEMA1_HINT}"),
        (
            {"schemaVersion": 1},
            "application/vnd.docker.distribution.manifest.v1+prettyjws; charset=utf-8",
            "image x: unsupported manifest media type 'application/vnd.docker.distribution.manifest.v1+prettyjws'; "
            + SCHEMA1_HINT,
        ),
        (
            {"mediaType": "m" * 150},
            None,
            f"image x: unsupported manifest media type '{'m' * 99}…'; {SCHEMA1_HINT}",
        ),
    ],
)
def test_a_manifest_of_another_shape_is_refused_saying_what_it_lacks(
    document: dict[str, Any], content_type: str | None, complaint: str
) -> None:
    assert refusal(document, content_type) == complaint


def test_a_digest_mismatch_names_both_digests_the_claim_cut_to_80_characters() -> None:
    body = b'{"schemaVersion":2}'
    claimed = "sha256:" + "0" * 100
    with pytest.raises(ManifestInvalid) as refused:
        verify_manifest_digest(body, claimed, "stable", "image x")
    assert str(refused.value) == (
        f"image x: the registry said the manifest is {claimed[:79]}… but its body hashes to {sha256_digest(body)}; "
        "the cache or the upstream served a corrupted manifest"
    )
    with pytest.raises(ManifestInvalid) as refused:
        verify_manifest_digest(body, None, DIGEST, "image x")
    assert str(refused.value) == f"image x: asked for manifest {DIGEST} but the registry served {sha256_digest(body)}"


def test_an_index_entry_of_another_type_is_named_cut_to_100_characters() -> None:
    media_type = "application/" + "x" * 150
    index = ImageIndex(OCI_INDEX, DIGEST, (Descriptor(media_type, DIGEST, 1, Platform("linux", "amd64")),))
    with pytest.raises(ManifestInvalid) as refused:
        select_platform(index, Platform("linux", "amd64"), "image x")
    assert str(refused.value) == f"image x: the entry for linux/amd64 is '{media_type[:99]}…', not an image manifest"


def test_a_config_s_variant_that_is_not_text_is_no_variant() -> None:
    config = json.dumps({"os": "linux", "architecture": "amd64", "variant": 8}).encode()
    assert check_config_platform(config, Platform("linux", "amd64"), "image x") == Platform("linux", "amd64")


# --- digests, media types and platforms of real images (the sandbox builds them as registries serve them) ---
def test_manifest_digest_must_match_the_header_and_the_pin() -> None:
    body = b'{"schemaVersion":2}'
    digest = sha256_digest(body)
    assert verify_manifest_digest(body, digest, "stable", "m") == digest
    assert verify_manifest_digest(body, None, digest, "m") == digest
    with pytest.raises(ManifestInvalid, match="hashes to"):
        verify_manifest_digest(body, "sha256:" + "0" * 64, "stable", "m")
    with pytest.raises(ManifestInvalid, match="asked for manifest"):
        verify_manifest_digest(body, None, "sha256:" + "0" * 64, "m")


@pytest.mark.parametrize(
    ("body", "content_type", "complaint"),
    [
        (b"<html>not json</html>", "text/html", "not JSON"),
        (
            b'{"schemaVersion":1,"fsLayers":[]}',
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "unsupported manifest media type",
        ),
        (
            b'{"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"../../etc","size":1,"mediaType":"x"},"layers":[]}',
            None,
            "not a sha256 digest",
        ),
        (b'{"mediaType":"application/vnd.oci.image.index.v1+json"}', None, "no manifests list"),
    ],
)
def test_malformed_manifests_are_manifest_invalid(body: bytes, content_type: str | None, complaint: str) -> None:
    with pytest.raises(ManifestInvalid, match=complaint):
        parse_manifest(body, content_type, sha256_digest(body), "manifest")


def test_media_type_falls_back_to_content_type_when_the_body_has_none() -> None:
    index = build_index([sample_image("nginx", "linux/amd64")])
    document = json.loads(index.manifest.data)
    del document["mediaType"]  # optional in the OCI image-spec
    body = json.dumps(document).encode()
    parsed = parse_manifest(body, f"{OCI_INDEX}; charset=utf-8", sha256_digest(body), "m")
    assert isinstance(parsed, ImageIndex)
    assert parsed.media_type == OCI_INDEX


def _index_with(*platforms: str, attestation: bool = False) -> ImageIndex:
    index = build_index([sample_image("app", platform) for platform in platforms])
    document = json.loads(index.manifest.data)
    if attestation:
        document["manifests"].append(
            {**document["manifests"][0], "platform": {"os": "unknown", "architecture": "unknown"}}
        )
    body = json.dumps(document).encode()
    parsed = parse_manifest(body, None, sha256_digest(body), "m")
    assert isinstance(parsed, ImageIndex)
    return parsed


def test_platform_selection_matches_arm64_with_or_without_its_v8_variant() -> None:
    index = _index_with("linux/amd64", "linux/arm64/v8")
    arm = select_platform(index, Platform.parse("linux/arm64"), "m")
    amd = select_platform(index, Platform.parse("linux/amd64"), "m")
    assert (str(arm.platform), str(amd.platform)) == ("linux/arm64/v8", "linux/amd64")
    assert (
        str(select_platform(_index_with("linux/arm64"), Platform.parse("linux/arm64/v8"), "m").platform)
        == "linux/arm64"
    )


def test_missing_platform_lists_the_runnable_platforms_only() -> None:
    index = _index_with("linux/arm64/v8", "linux/s390x", attestation=True)
    with pytest.raises(
        PlatformNotAvailable, match=r"no image for platform linux/amd64 \(it has: linux/arm64/v8, linux/s390x\)"
    ):
        select_platform(index, Platform.parse("linux/amd64"), "image x")


def test_the_exact_variant_wins_over_an_earlier_entry_that_satisfies_it() -> None:
    # Given an index listing arm64 without a variant before arm64/v8
    index = ImageIndex(
        media_type=OCI_INDEX,
        digest="sha256:" + "0" * 64,
        manifests=(
            Descriptor(OCI_MANIFEST, "sha256:" + "1" * 64, 10, Platform.parse("linux/arm64")),
            Descriptor(OCI_MANIFEST, "sha256:" + "2" * 64, 10, Platform.parse("linux/arm64/v8")),
        ),
    )
    # When arm64/v8 is wanted, then its exact entry is chosen; for arm64, the first entry satisfying it
    assert select_platform(index, Platform.parse("linux/arm64/v8"), "m").digest == "sha256:" + "2" * 64
    assert select_platform(index, Platform.parse("linux/arm64"), "m").digest == "sha256:" + "1" * 64


def test_an_index_without_platforms_says_it_has_none() -> None:
    index = ImageIndex(media_type=OCI_INDEX, digest="sha256:" + "0" * 64, manifests=())
    with pytest.raises(PlatformNotAvailable) as refused:
        select_platform(index, Platform.parse("linux/amd64"), "image x")
    assert str(refused.value) == (
        "image x has no image for platform linux/amd64 (it has: none); choose one of those platforms or another image"
    )


def test_an_index_inside_an_index_is_not_an_image() -> None:
    index = ImageIndex(
        media_type=OCI_INDEX,
        digest="sha256:" + "0" * 64,
        manifests=(Descriptor(OCI_INDEX, "sha256:" + "1" * 64, 10, Platform.parse("linux/amd64")),),
    )
    with pytest.raises(ManifestInvalid) as refused:
        select_platform(index, Platform.parse("linux/amd64"), "image x")
    assert str(refused.value) == f"image x: the entry for linux/amd64 is {OCI_INDEX!r}, not an image manifest"


def test_a_single_platform_config_must_name_the_requested_platform() -> None:
    config = sample_image("nginx", "linux/amd64").config.data
    assert str(check_config_platform(config, Platform.parse("linux/amd64"), "m")) == "linux/amd64"
    with pytest.raises(PlatformNotAvailable, match="single-platform image for linux/amd64, not linux/arm64"):
        check_config_platform(config, Platform.parse("linux/arm64"), "m")


@pytest.mark.parametrize(
    ("config", "complaint"),
    [
        (
            b"\xff not text",
            "m: the image config is not JSON ('utf-8' codec can't decode byte 0xff in position 0: invalid start byte)",
        ),
        (b"{not json", "m: the image config is not JSON (Expecting property name enclosed in double quotes)"),
        (b'["os", "linux"]', "m: the image config is not a JSON object"),
        (b'{"architecture": "amd64"}', "m: the image config names no os/architecture"),
        (b'{"os": "linux"}', "m: the image config names no os/architecture"),
        (b'{"os": "linux", "architecture": 64}', "m: the image config names no os/architecture"),
    ],
)
def test_a_config_that_is_no_image_config_is_manifest_invalid(config: bytes, complaint: str) -> None:
    with pytest.raises(ManifestInvalid) as refused:
        check_config_platform(config, Platform.parse("linux/amd64"), "m")
    assert str(refused.value) == complaint


def test_a_single_platform_image_declares_its_variant() -> None:
    config = json.dumps({"os": "linux", "architecture": "arm64", "variant": "v8"}).encode()
    assert str(check_config_platform(config, Platform.parse("linux/arm64"), "m")) == "linux/arm64/v8"
    empty_variant = json.dumps({"os": "linux", "architecture": "amd64", "variant": ""}).encode()
    assert str(check_config_platform(empty_variant, Platform.parse("linux/amd64"), "m")) == "linux/amd64"
    with pytest.raises(PlatformNotAvailable) as refused:
        check_config_platform(config, Platform.parse("linux/amd64"), "image x")
    assert str(refused.value) == (
        "image x is a single-platform image for linux/arm64/v8, not linux/amd64; choose platform linux/arm64/v8 or an "
        "image built for the platform you need"
    )
