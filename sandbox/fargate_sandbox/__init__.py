"""The local sandbox: emulated AWS (moto plus the rules moto lacks), a real OCI registry, a Kubernetes emulator.

Outside production code: it imports ``fargate_app``; ``fargate_app`` never imports it.
"""
