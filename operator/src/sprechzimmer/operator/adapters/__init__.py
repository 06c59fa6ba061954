"""Adapters: the operator's only I/O (Kubernetes API, HTTP endpoints, logging)."""
