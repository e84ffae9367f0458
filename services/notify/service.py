"""`Notifier`: follows the alarm change log, records the ladder's sends in the outbox and
hands them to one worker thread per channel (docs/notifications.md).

It reads the store's change log from a durable cursor (`notify`), like the MQTT publisher,
so it works in every layout: whichever process changed an alarm (the rules engine raising
or reminding, the web app acknowledging), the notifier sees it from the file. The ladder's
thread only decides and writes; sending happens on the channels' workers, each with a
bounded queue, so a slow channel never delays another and nothing waits on the rules
engine's loop.

Supervision: a send or a periodic link check (`Channel.check()`) that fails raises the
technical alarm `notify_failing` naming channel and phone; a ward that no phone reaches any
more raises `notify_unreachable` (high). Both are alarms like any other, so they go up the
ladder through the channels that still work, and clear when the channel works again.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import services.alarms.lifecycle as lifecycle
from carehub.clock import Clock
from carehub.site import Priority, Site
from services.alarms.store import AlarmStore
from services.notify.channel import Channel, ChannelError, Step, Target
from services.notify.ladder import NOTIFY_RULES, Ladder, Send
from services.notify.links import AckLinks
from services.notify.outbox import SEND_ORDER, Outbox, Row
from services.notify.subscriptions import CHANNEL as WEBPUSH
from services.notify.subscriptions import PushSubscriptions

_LOGGER = logging.getLogger(__name__)

CURSOR = "notify"
"""The notifier's cursor in the alarm change log (`alarm_cursors`)."""
POLL_S = 0.25
"""How often (real seconds) the ladder looks at the change log and the clock when not woken."""
CHECK_EVERY = timedelta(seconds=20)
"""Link checks, on the hub's clock: a dead channel is noticed well within 30 s."""
QUEUE_SIZE = 1000
"""Per channel; a row that does not fit stays pending and is queued again on a later tick."""
FAILING = "notify_failing"
UNREACHABLE = "notify_unreachable"


@dataclass(frozen=True, slots=True)
class _Check:
    """A link check queued on a channel's worker."""


_STOP_RANK, _CHECK_RANK = -1, 2

_Item = tuple[int, int, int | _Check | None]
"""(rank, order, what): a row id, a link check, or None to stop."""


class _Worker:
    """One channel's thread and bounded queue, in `SEND_ORDER`."""

    def __init__(self, notifier: Notifier, channel: Channel) -> None:
        self.notifier = notifier
        self.channel = channel
        self.queue: queue.PriorityQueue[_Item] = queue.PriorityQueue(QUEUE_SIZE)
        self.thread = threading.Thread(target=self._run, name=f"notify-{channel.name}", daemon=True)
        self._checks = itertools.count()

    def put_row(self, row: Row) -> None:
        """Queue a send (queue.Full when the queue is full)."""
        self.queue.put_nowait((SEND_ORDER[row.step], row.id, row.id))

    def put_check(self) -> None:
        """Queue a link check (queue.Full when the queue is full)."""
        self.queue.put_nowait((_CHECK_RANK, next(self._checks), _Check()))

    def put_stop(self) -> None:
        """Stop before anything still queued (queue.Full when the queue is full)."""
        self.queue.put_nowait((_STOP_RANK, 0, None))

    def _run(self) -> None:
        while True:
            _rank, _order, item = self.queue.get()
            try:
                if item is None or self.notifier.stopping:
                    # what is still queued stays in the outbox, for the next start: sending
                    # it now would race the store's close (a backlog logged one error each)
                    return
                if isinstance(item, _Check):
                    self.notifier._check(self.channel)
                else:
                    self.notifier._send(self.channel, item)
            except Exception:
                _LOGGER.exception("notify worker %s failed on %s", self.channel.name, item)
            finally:
                self.queue.task_done()


class Notifier:
    """The ladder, the outbox and the channel workers of one hub."""

    def __init__(
        self,
        db: Path | str,
        site: Site,
        channels: list[Channel],
        clock: Clock,
        *,
        secret_key: str,
        public_url: str | None = None,
        poll_s: float = POLL_S,
        check_every: timedelta = CHECK_EVERY,
    ) -> None:
        self.site = site
        self.clock = clock
        self.store = AlarmStore(db)
        self.outbox = Outbox(self.store)
        self.push: PushSubscriptions | None = None
        """Browsers subscribed to Web Push: phones of the `webpush` channel, when it runs."""
        if any(c.name == WEBPUSH for c in channels):
            self.push = PushSubscriptions(self.store)
        self.ladder = Ladder(site, self.push.phones if self.push is not None else None)
        self._static = {p.id: p for p in site.phones}
        base = public_url or site.notify.public_url
        self.links = AckLinks(secret_key, self.store, clock, base)
        self.base_url = None if base is None else base.rstrip("/")
        self.channels = {c.name: c for c in channels}
        self.poll_s = poll_s
        self.check_every = check_every
        self._workers = {c.name: _Worker(self, c) for c in channels}
        self._queued: set[int] = set()
        self._queued_lock = threading.Lock()
        self._failing: dict[tuple[str, str], str] = {}
        """(channel, phone) → why it is failing ("send" or "check")."""
        self._known: set[tuple[str, str]] = set()
        """(channel, phone) pairs a send or a check has shown working or failing."""
        self._health_lock = threading.Lock()
        self._next_check: datetime | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick_lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.repeats_at_start = 0
        self.on_change: Callable[[], None] | None = None
        """Called after the notifier itself changed alarms (a technical alarm), so an
        in-process alarm service can look at the change log at once."""
        self.on_delivery: Callable[[], None] | None = None
        """Called after a send was recorded or finished, so an in-process delivery feed (the
        board's, `services.notify.desk.NotifyDesk`) can look at the outbox at once."""

    # --- where a phone is reached ---------------------------------------------------------

    def targets(self, phone_id: str) -> list[tuple[str, Target]]:
        """(channel name, target) of every configured channel that reaches the phone: the
        site file's addresses, or a subscribed browser's subscription on `webpush`."""
        phone = self._static.get(phone_id)
        if phone is None:
            push = self.push.get(phone_id) if self.push is not None else None
            if push is None:
                return []
            return [(WEBPUSH, Target(push.id, push.name, push.subscription))]
        out = []
        addresses = {"ntfy": phone.ntfy_topic, "espa": phone.espa_address, "demo": phone.id}
        for name in self.channels:
            address = addresses.get(name)
            if address is not None:
                out.append((name, Target(phone.id, phone.name, address)))
        return out

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Notifier:
        """Queue what an earlier process left pending, then follow the change log."""
        if self.store.cursor(CURSOR) == 0 and self.store.last_change_seq() > 0:
            # First start on a file with history: phones hear of what happens from now on,
            # not of last month's alarms.
            self.store.set_cursor(CURSOR, self.store.last_change_seq())
        pending = self.outbox.pending()
        self.repeats_at_start = sum(1 for r in pending if r.attempts > 0)
        if self.repeats_at_start:
            _LOGGER.warning(
                "%d notification(s) were in flight when the notifier stopped; sending again",
                self.repeats_at_start,
            )
        for worker in self._workers.values():
            worker.thread.start()
        self._thread = threading.Thread(target=self._run, name="notify-ladder", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Look at the change log now (an in-process commit)."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        """Whether `stop` has begun: workers take no further send from their queues."""
        return self._stopping.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the ladder and the workers (what is pending stays in the outbox)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in self._workers.values():
            # a worker waiting on an empty queue needs the sentinel; a full queue means it
            # is busy and sees `stopping` at its next item (a blocking put hung the demo's
            # stop forever with a thousand sends queued)
            with contextlib.suppress(queue.Full):
                worker.put_stop()
        for worker in self._workers.values():
            if worker.thread.is_alive():
                worker.thread.join(timeout)
        for channel in self.channels.values():
            channel.close()
        self.store.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception:
                _LOGGER.exception("notify ladder failed; retrying")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Whether every queued send finished within `timeout` (tests, shutdown)."""
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            while not deadline.is_set():
                with self._queued_lock:
                    if not self._queued and all(
                        w.queue.unfinished_tasks == 0 for w in self._workers.values()
                    ):
                        return True
                deadline.wait(0.01)
            return False
        finally:
            timer.cancel()

    # --- the ladder -----------------------------------------------------------------------

    def tick(self) -> int:
        """Follow the change log, fire due fallbacks, queue pending rows and link checks;
        answers how many rows were written."""
        with self._tick_lock:
            now = self.clock.now()
            written = self._follow(now) + self._fallbacks(now)
            if written:
                self._delivered()
            self._queue_pending()
            if self._next_check is None or now >= self._next_check:
                self._next_check = now + self.check_every
                for worker in self._workers.values():
                    with contextlib.suppress(queue.Full):  # busy sending: the next check will do
                        worker.put_check()
            return written

    def _follow(self, now: datetime) -> int:
        written = 0
        while True:
            cursor = self.store.cursor(CURSOR)
            changes = self.store.changes_after(cursor, limit=200)
            if not changes:
                return written
            with self.store.transaction():
                for change in changes:
                    written += self._apply(change.envelope(), now)
                self.store.sql(
                    "INSERT INTO alarm_cursors (name, seq) VALUES (?, ?)"
                    " ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                    (CURSOR, changes[-1].seq),
                )

    def _apply(self, change: dict[str, Any], now: datetime) -> int:
        alarm = change["alarm"]
        alarm_id = str(alarm["alarm_id"])
        reason = change["reason"]
        if reason == "raised":
            after = self.site.escalation.fallback_after()
            if after is not None and alarm["rule"] not in NOTIFY_RULES:
                raised = datetime.fromisoformat(str(change["at"]))
                self.outbox.set_fallback(alarm_id, raised + after)
        if reason == "acknowledged" or change["type"] == "end":
            self.outbox.drop_fallback(alarm_id)
            self.outbox.cancel_alarm(alarm_id, now)
        sends = self.ladder.plan(change, self.outbox.told(alarm_id))
        return self._record(sends, now)

    def _fallbacks(self, now: datetime) -> int:
        written = 0
        for alarm_id in self.outbox.due_fallbacks(now):
            with self.store.transaction():
                self.outbox.drop_fallback(alarm_id)
                alarm = self.store.get(alarm_id)
                if alarm is None:
                    continue
                sends = self.ladder.fallback(alarm.to_json(), self.outbox.told(alarm_id))
                written += self._record(sends, now)
        return written

    def _record(self, sends: list[Send], now: datetime) -> int:
        written = 0
        for send in sends:
            technical = send.alarm["rule"] in NOTIFY_RULES
            for name, target in self.targets(send.phone_id):
                if technical and self._is_failing(name, send.phone_id):
                    continue  # through the channels that still work
                ack = None
                if send.step is not Step.TAKEN:
                    ack = self.links.url(send.alarm_id, send.phone_id)
                notice = self.ladder.notice(send, click_url=self._click(send), ack_url=ack)
                self.outbox.add(send.alarm_id, send.phone_id, name, target.address, notice, now)
                written += 1
        return written

    def _click(self, send: Send) -> str | None:
        return None if self.base_url is None else f"{self.base_url}/?alarm={send.alarm_id}"

    def _queue_pending(self) -> None:
        for row in self.outbox.pending():
            worker = self._workers.get(row.channel)
            if worker is None:
                continue
            with self._queued_lock:
                if row.id in self._queued:
                    continue
                try:
                    worker.put_row(row)
                except queue.Full:
                    continue
                self._queued.add(row.id)

    # --- sending (on a channel's worker) --------------------------------------------------

    def _send(self, channel: Channel, row_id: int) -> None:
        try:
            row = self.outbox.begin(row_id)
            if row is None:
                return
            try:
                channel.send(Target(row.phone_id, self._phone_name(row), row.address), row.notice)
            except ChannelError as err:
                self.outbox.finish(row.id, "failed", self.clock.now(), str(err))
                self.failed += 1
                _LOGGER.warning("%s to phone %s failed: %s", channel.name, row.phone_id, err)
                if err.gone and self.push is not None and self.push.drop(row.phone_id):
                    _LOGGER.warning("dropped push subscription %s: %s", row.phone_id, err)
                self._health(channel.name, [row.phone_id], str(err), "send")
                return
            self.outbox.finish(row.id, "sent", self.clock.now())
            self.sent += 1
            self._health(channel.name, [row.phone_id], None, "send")
        finally:
            with self._queued_lock:
                self._queued.discard(row_id)
            self._delivered()

    def _delivered(self) -> None:
        if self.on_delivery is not None:
            try:
                self.on_delivery()
            except Exception:
                _LOGGER.exception("delivery hook failed")

    def _phone_name(self, row: Row) -> str:
        phone = self.ladder.phones.get(row.phone_id)
        return phone.name if phone is not None else row.phone_id

    def _check(self, channel: Channel) -> None:
        phones = [
            p for p in self.ladder.phones if any(n == channel.name for n, _t in self.targets(p))
        ]
        try:
            channel.check()
        except ChannelError as err:
            _LOGGER.warning("%s link check failed: %s", channel.name, err)
            self._health(channel.name, phones, str(err), "check")
            return
        self._health(channel.name, phones, None, "check")

    # --- supervision ----------------------------------------------------------------------

    def _is_failing(self, channel: str, phone_id: str) -> bool:
        with self._health_lock:
            return (channel, phone_id) in self._failing

    def _health(self, channel: str, phones: list[str], error: str | None, how: str) -> None:
        """Note what a send or a check showed; raise or clear the technical alarms."""
        raised, cleared = [], []
        with self._health_lock:
            for phone_id in phones:
                key = (channel, phone_id)
                self._known.add(key)
                if error is not None and key not in self._failing:
                    self._failing[key] = how
                    raised.append(phone_id)
                elif (
                    error is None
                    and key in self._failing
                    and (how == "send" or self._failing[key] == "check")
                ):
                    del self._failing[key]
                    cleared.append(phone_id)
        if not raised and not cleared:
            return
        site, esc = self.site.site, self.site.escalation
        for phone_id in raised:
            lifecycle.raise_technical(
                self.store,
                self.clock,
                site,
                esc,
                FAILING,
                f"notify:{channel}:{phone_id}",
                Priority.MEDIUM,
                device_id=f"{channel}:{phone_id}",
            )
        for phone_id in cleared:
            lifecycle.clear_technical(
                self.store, self.clock, site, FAILING, f"notify:{channel}:{phone_id}"
            )
        self._wards()
        self.wake()
        if self.on_change is not None:
            self.on_change()

    def reachable(self, phone_id: str) -> bool:
        """Whether some channel reaches the phone and is not failing."""
        return any(not self._is_failing(n, phone_id) for n, _t in self.targets(phone_id))

    def _wards(self) -> None:
        site, esc = self.site.site, self.site.escalation
        for ward in self.site.wards:
            phones = [p.id for p in self.ladder.phones.values() if ward.id in p.wards]
            if not phones:
                continue  # check-config warned; no phone was ever meant to hear it
            subject = f"notify:ward:{ward.id}"
            if any(self.reachable(p) for p in phones):
                lifecycle.clear_technical(self.store, self.clock, site, UNREACHABLE, subject)
            else:
                lifecycle.raise_technical(
                    self.store,
                    self.clock,
                    site,
                    esc,
                    UNREACHABLE,
                    subject,
                    Priority.HIGH,
                    device_id=f"ward:{ward.id}",
                )

    # --- reading --------------------------------------------------------------------------

    def health(self) -> dict[str, str]:
        """`channel:phone` → "ok", "failing", or "unknown" before a send or a link check
        has shown either (the devices page)."""
        out = {}
        with self._health_lock:
            failing, known = set(self._failing), set(self._known)
        for phone in self.ladder.phones.values():
            for name, _t in self.targets(phone.id):
                key = (name, phone.id)
                state = "failing" if key in failing else "ok" if key in known else "unknown"
                out[f"{name}:{phone.id}"] = state
        return out

    def metrics(self) -> dict[str, float]:
        """Counters for /metrics."""
        return {
            "carehub_notify_sent_total": float(self.sent),
            "carehub_notify_failed_total": float(self.failed),
            "carehub_notify_repeats_total": float(self.outbox.repeats()),
        }
