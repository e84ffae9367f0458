"""Services: rules and alarms, the staff web app, reports (docs/alarms.md, docs/freed-hours.md,
docs/web-app.md)."""
