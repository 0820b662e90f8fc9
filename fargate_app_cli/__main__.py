"""``python -m fargate_app_cli``: the ``fargate-app`` command (the kubeconfig's token plugin runs it this way)."""

from fargate_app_cli.main import app

app()
