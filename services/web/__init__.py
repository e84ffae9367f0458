"""The staff web app and JSON API (docs/web-app.md)."""
