// CareHub's service worker (docs/notifications.md, "Web Push"): it shows each push as a
// notification (tag = the alarm, so a reminder or "taken" replaces it), offers the
// acknowledge action where the browser has actions, POSTs the signed single-use acknowledge
// link when that action is chosen, and opens the board on the alarm when the notification is
// clicked. The payload carries no resident name and no credential but that one link.
"use strict";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

// The acknowledge and board links, on this origin: the links name the hub's public URL, and
// this worker may only connect to its own origin (the app's Content-Security-Policy).
function here(url) {
  if (!url) return null;
  try {
    const u = new URL(url, self.location.origin);
    return self.location.origin + u.pathname + u.search;
  } catch (e) {
    return null;
  }
}

function options(data) {
  const opts = {
    body: data.body || "",
    tag: data.alarm_id || "carehub",
    renotify: true,
    requireInteraction: data.urgency === "high",
    icon: "/icon-192.png",
    badge: "/icon-192.png",
    data: { alarm_id: data.alarm_id, ack_url: data.ack_url || null, click_url: data.click_url || null },
  };
  const maxActions = (self.Notification && self.Notification.maxActions) || 0;
  if (data.ack_url && maxActions > 0) {
    opts.actions = [{ action: "ack", title: data.ack_label || "Acknowledge" }];
  }
  return opts;
}

function show(data) {
  return self.registration.showNotification(data.title || "CareHub", options(data));
}

async function acknowledge(data) {
  const url = here(data.ack_url);
  if (!url) return null;
  const response = await fetch(url, {
    method: "POST",
    headers: { Accept: "application/json", "X-CareHub-Ack": "1" },
    credentials: "omit",
  });
  if (!response.ok) {
    // used already, expired, or someone else took it: say so instead of failing silently
    await self.registration.showNotification("CareHub", {
      body: `HTTP ${response.status}: open the board`,
      tag: (data.alarm_id || "carehub") + "-ack",
      data: { click_url: data.click_url || null },
    });
  }
  return response.status;
}

async function openBoard(data) {
  const url = here(data.click_url) || self.location.origin + "/";
  const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const client of open) {
    if (new URL(client.url).origin === self.location.origin && "focus" in client) {
      await client.focus();
      return client.navigate ? client.navigate(url) : client;
    }
  }
  return self.clients.openWindow(url);
}

// What a click does, apart from the event, so a test can run it on a shown notification.
function handleClick(action, notification) {
  notification.close();
  const data = notification.data || {};
  return action === "ack" ? acknowledge(data) : openBoard(data);
}

self.addEventListener("push", (event) => {
  let data;
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = { title: "CareHub", body: event.data ? event.data.text() : "" };
  }
  event.waitUntil(show(data));
});

self.addEventListener("notificationclick", (event) => {
  event.waitUntil(handleClick(event.action, event.notification));
});

self.carehub = { show, handleClick, acknowledge };
