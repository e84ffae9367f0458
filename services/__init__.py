"""Services: rules and alarms, the staff web app, reports (SPEC §5-§7)."""
