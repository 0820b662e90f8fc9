"""Kubernetes steps: EKS authentication, manifests, server-side apply, rollout checks and deletion.

The ``kubernetes`` client and ``kubernetes_validate`` ship in their own Lambda layer (``layers/kubernetes``) used only
by the functions that talk to Kubernetes, so every import of them in this package happens inside a function: importing
``fargate_app.kube.manifests`` or ``fargate_app.kube.models`` must work where that layer is absent.
"""
