"""Reports for managers: freed night-shift hours (SPEC §6) and equipment utilisation."""
