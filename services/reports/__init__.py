"""Reports for managers: freed night-shift hours (docs/freed-hours.md) and equipment utilisation."""
