"""Fargate App Provisioner: the steps that turn a request into an app running on EKS Fargate."""
