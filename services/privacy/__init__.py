"""Privacy and self-supervision: retention, per-resident export, the monitoring switch and the
admin's end-to-end self-test (issue 10; docs/security.md)."""
