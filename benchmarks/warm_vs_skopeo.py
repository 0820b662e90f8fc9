"""Figure 4: the WarmImageCache step against ``skopeo copy`` (Debian's skopeo) of the same image and platform, through
the same pull-through proxy (real CNCF distribution) whose storage is fresh for every pull, so each one fetches
from the upstream. Both reach the proxy directly, at ``<prefix>/<repository>``
(the step through its injectable credential source): the sandbox's registry front is a Python hop AWS's path does
not have. The step through the front (ECR token call included) is reported beside, for information. The image is a multi-arch OCI index (linux/amd64 and linux/arm64/v8), each
platform with three layers of 30, 20 and 10 MB of incompressible bytes (60 MB: large enough that the
copy, not process start-up or the TLS handshake, is timed; with 12 MB the two were within noise of each other). The step runs in process (``warm_image_cache``, with
its ECR token call); skopeo gets ``--src-tls-verify=false``, ``--override-os linux
--override-arch amd64`` and writes to a fresh ``dir:``. The order alternates from run to run, after one untimed round of each. Bytes fetched for other
platforms are read from the upstream registry's access log: every manifest and blob of the arm64 image it served.
"""

from __future__ import annotations

import base64
import random
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.report import Figure, Row, median, ratio
from benchmarks.sandbox_runs import QUIET, ROOT, sandbox_aws_environment

REPOSITORY, TAG, PREFIX, UPSTREAM = "bench/big", "1", "ecr-public", "public.ecr.aws"
PLATFORMS = ("linux/amd64", "linux/arm64/v8")
LAYER_BYTES = (30_000_000, 20_000_000, 10_000_000)
SKOPEO = "/usr/bin/skopeo"
DIRECT_REPOSITORY = f"{PREFIX}/{REPOSITORY}"


def _big_index(seed: int = 9) -> object:
    from fargate_sandbox.oci_images import build_image, build_index

    generator = random.Random(seed)  # noqa: S311 - reproducible filler bytes, not secrets
    images = [
        build_image(
            platform,
            [
                {f"opt/big/{platform.replace('/', '-')}/layer{i}.bin": generator.randbytes(size)}
                for i, size in enumerate(LAYER_BYTES)
            ],
        )
        for platform in PLATFORMS
    ]
    return build_index(images)


def _fetched(requests: list[str], digests: set[str]) -> list[str]:
    return [path for path in requests if path.rsplit("/", 1)[-1] in digests]


def run(runs: int) -> Figure:
    from fargate_sandbox.oci_images import RegistryPusher
    from fargate_sandbox.registry_procs import start_proxy, start_upstream
    from fargate_sandbox.sandbox import Sandbox
    from fargate_sandbox.workflows import Workflows

    figure = Figure(
        4,
        "Warm step vs skopeo copy, cold proxy",
        (__doc__ or "").replace("\n", " ").strip(),
    )
    if not Path(SKOPEO).exists():
        raise FileNotFoundError(f"{SKOPEO} is missing: apt-get install skopeo (make bench installs it)")
    index = _big_index()
    amd64, arm64 = index.images  # type: ignore[attr-defined]
    other = {arm64.digest, *(blob.digest for blob in arm64.blobs)}
    sizes = {blob.digest: blob.size for image in index.images for blob in (image.manifest, *image.blobs)}  # type: ignore[attr-defined]
    times: dict[str, list[float]] = {"warm": [], "skopeo": [], "warm via front": []}
    other_bytes: dict[str, list[int]] = {"warm": [], "skopeo": [], "warm via front": []}
    warmed_bytes = 0
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-warm-")))
        upstream = stack.enter_context(start_upstream(workdir))
        pusher = RegistryPusher(upstream.url)
        pusher.push_index(REPOSITORY, index, TAG)  # type: ignore[arg-type]
        # The same image at the cache path too: pulled straight from the proxy, <prefix>/<repo> is its upstream name.
        pusher.push_index(DIRECT_REPOSITORY, index, TAG)  # type: ignore[arg-type]
        sandbox = stack.enter_context(Sandbox(seed_registries=False))
        stack.enter_context(Workflows(sandbox, ROOT / "template.yaml", environment=QUIET))  # the Lambda environment
        # The warm step runs in this process (its time is the figure): it calls the sandbox's ECR as the administrator.
        stack.enter_context(sandbox_aws_environment(sandbox))
        sandbox.boto3_client("ecr").create_pull_through_cache_rule(
            ecrRepositoryPrefix=PREFIX, upstreamRegistryUrl=UPSTREAM
        )
        from fargate_app.registry import warm_image_cache
        from fargate_app.registry.credentials import RegistryCredentials

        def warm_direct(_run: int, proxy_host: str) -> None:
            nonlocal warmed_bytes
            direct = RegistryCredentials(f"http://{proxy_host}", "Basic " + base64.b64encode(b"AWS:unused").decode())
            result = warm_image_cache(
                f"{UPSTREAM}/{REPOSITORY}:{TAG}", PREFIX, "linux/amd64", credentials=lambda: direct
            )
            warmed_bytes = result.bytes_warmed

        def warm_front(_run: int, _proxy_host: str) -> None:
            warm_image_cache(f"{UPSTREAM}/{REPOSITORY}:{TAG}", PREFIX, "linux/amd64")

        def copy(run_number: int, proxy_host: str) -> None:
            destination = workdir / f"skopeo-{run_number}"
            answer = subprocess.run(  # noqa: S603 - Debian's skopeo with our arguments
                [
                    SKOPEO,
                    "--insecure-policy",
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    "--override-os",
                    "linux",
                    "--override-arch",
                    "amd64",
                    f"docker://{proxy_host}/{DIRECT_REPOSITORY}:{TAG}",
                    f"dir:{destination}",
                ],
                check=False,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if answer.returncode != 0:
                raise RuntimeError(f"skopeo copy failed: {answer.stderr[-1500:]}")

        # One untimed round first: the step's first call builds its ECR client, skopeo's loads from disk.
        for run_number in range(-1, runs):
            order = [("warm", warm_direct), ("skopeo", copy), ("warm via front", warm_front)]
            for tool, action in order if run_number % 2 == 0 else order[::-1]:
                proxy = start_proxy(workdir, upstream.url, name=f"proxy-{tool}-{run_number}")  # fresh storage: cold
                try:
                    sandbox.set_registry_proxy(UPSTREAM, proxy.url)
                    seen = len(upstream.requests())
                    started = time.monotonic()
                    action(run_number, proxy.url.removeprefix("http://"))
                    elapsed = time.monotonic() - started
                    fetched = _fetched(upstream.requests()[seen:], other)
                    if run_number >= 0:
                        times[tool].append(elapsed)
                        other_bytes[tool].append(sum(sizes.get(path.rsplit("/", 1)[-1], 0) for path in fetched))
                finally:
                    proxy.stop()

    warm_s, skopeo_s = median(times["warm"]), median(times["skopeo"])
    quotient = ratio(warm_s, skopeo_s)
    image_mb = sum(blob.size for blob in amd64.blobs) / 1e6
    figure.rows += [
        Row(
            "skopeo copy (baseline)",
            skopeo_s,
            "s",
            "",
            None,
            runs=runs,
            note=f"every run: {', '.join(f'{t:.2f}' for t in times['skopeo'])} s",
        ),
        Row(
            "WarmImageCache step",
            warm_s,
            "s",
            "<= 1.0x",
            quotient <= 1.0,
            baseline=skopeo_s,
            ratio=quotient,
            runs=runs,
            note=f"every run: {', '.join(f'{t:.2f}' for t in times['warm'])} s; {warmed_bytes / 1e6:.1f} MB "
            f"warmed of the amd64 image ({image_mb:.1f} MB of config and layers)",
        ),
        Row(
            "WarmImageCache step via the registry front",
            median(times["warm via front"]),
            "s",
            "",
            None,
            baseline=skopeo_s,
            ratio=ratio(median(times["warm via front"]), skopeo_s),
            runs=runs,
            note="informational: with the ECR token call and the sandbox front's Python hop, which AWS does not have",
        ),
        Row(
            "bytes fetched for other platforms (warm)",
            max(other_bytes["warm"] + other_bytes["warm via front"]),
            "bytes",
            "= 0",
            max(other_bytes["warm"] + other_bytes["warm via front"]) == 0,
            runs=runs,
            note="the largest of every run, direct and via the front",
        ),
        Row("bytes fetched for other platforms (skopeo)", median(other_bytes["skopeo"]), "bytes", "", None, runs=runs),
    ]
    return figure
