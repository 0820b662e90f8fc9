"""The Kubernetes permissions of the EKS access policies, as the EKS user guide lists them.

Source: Amazon EKS User Guide, "Review access policy permissions"
(https://docs.aws.amazon.com/eks/latest/userguide/access-policy-permissions.html; awsdocs/amazon-eks-user-guide
``latest/ug/manage-access/k8s-access/access-policy-reference.adoc``). "Each row of each table in each access policy is
a separate rule"; an empty API group cell is the core group ``""``. The tables match the upstream ``cluster-admin``,
``admin``, ``edit`` and ``view`` roles except that ``edit``/``admin`` lack ``pods/eviction`` create,
``serviceaccounts/token`` create and ``coordination.k8s.io`` leases, which EKS does not list.

The rows are data (``eks_access_policies.json``, one Kubernetes PolicyRule a line), transcribed from those tables.
"""

from __future__ import annotations

import json
from pathlib import Path

from kube_emulator.rbac import Rule

_TABLES = Path(__file__).with_name("eks_access_policies.json")

ACCESS_POLICIES: dict[str, tuple[Rule, ...]] = {
    policy: tuple(Rule.from_object(row) for row in rows)
    for policy, rows in json.loads(_TABLES.read_text(encoding="utf-8")).items()
}
