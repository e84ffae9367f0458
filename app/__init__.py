"""The composition root: the `carehub` command, the hub that wires the parts together, the
demo, and the use-cases that drive several parts at once (backfill, import, broker config).

Nothing below imports from here (docs/architecture.md); import-linter enforces it.
"""
