"""Getting alarms to the phones staff carry: channels (ntfy, ESPA 4.4.4 paging, Web Push), the
ladder that sends, reminds, widens and stops at the first acknowledgement, and the outbox that
records every step before it is attempted (docs/notifications.md)."""
