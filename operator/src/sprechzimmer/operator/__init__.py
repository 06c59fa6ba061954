"""The Sprechzimmer operator: turns each VideoSession into what the call needs.

Layers (imports point downwards only, checked by ``.importlinter``):

- ``handlers`` — Kopf registrations: feed watch events into the reconciler.
- ``reconciler`` — runs the workers and executes plans; decides nothing about a session.
- ``index``, ``workqueue`` — what the watches said; which session to reconcile next and when.
- ``adapters`` — the only code that talks to the Kubernetes API or serves HTTP (metrics, probes).
- ``ports`` — the Protocols the reconciler uses (``KubeAPI``, ``MetricsSink``) and API errors.
- ``core`` — pure decisions (spec + observed state + now → plan), no I/O.
"""
