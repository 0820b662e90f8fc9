"""Imported by the Lambda workers' forkserver (``lambda_dispatch.PRELOAD``) and by the sandbox itself: botocore's data
for the services the functions call (endpoints, partitions, each service's model and endpoint rules) read once, and
inherited by every worker the forkserver forks.

Every botocore session reads those JSON files again: about 0.1 s of CPU per client at each cold start, thousands of
times in a test run, and in the sandbox's own process endpoints.json (1.2 MB) seven times and EC2's model six times
per start (moto makes sessions of its own). botocore's loader caches what it read per instance and never changes it,
so every session of the process shares one. What a real cold start costs is measured without the sandbox
(benchmarks, figure 1).
"""

from __future__ import annotations

import functools

import botocore
import botocore.loaders
import botocore.session
from botocore.config import Config

# The services fargate_app's steps call (its ``client("…")`` calls and the EKS token's STS presign).
SERVICES = ("dynamodb", "ec2", "ecr", "eks", "iam", "secretsmanager", "ssm", "stepfunctions", "sts")


def share_one_loader() -> None:
    """Every session made in this process (and its forks) reads botocore's data through one loader, filled now;
    once per process."""
    if getattr(botocore.session.create_loader, "cache_info", None) is not None:
        return  # shared already
    shared = functools.cache(botocore.loaders.create_loader)
    botocore.session.create_loader = shared  # botocore.session imported the name
    session = botocore.session.get_session()
    for service in SERVICES:
        # Made and dropped, unsigned (no credentials are looked up): nothing is sent, and urllib3 opens no connection
        # before a request.
        session.create_client(service, region_name="us-west-2", config=Config(signature_version=botocore.UNSIGNED))


share_one_loader()
