// The board's "notify this device" panel (docs/notifications.md, "Web Push"): registers the
// service worker, and on a tap (never on load) asks for permission, subscribes with the hub's
// VAPID key and stores the subscription for the chosen wards. Unsubscribing forgets it.
"use strict";
(function () {
  const panel = document.getElementById("push");
  if (!panel) return;
  const csrf = JSON.parse(document.getElementById("board-data").textContent).csrf;
  const status = document.getElementById("push-status");
  const wardsBox = document.getElementById("push-wards");
  const onBtn = document.getElementById("push-on");
  const offBtn = document.getElementById("push-off");
  const say = (key, extra) => { status.textContent = (panel.dataset[key] || key) + (extra ? " " + extra : ""); };
  let registration = null;
  let key = null;

  function bytes(b64url) {
    const b64 = (b64url + "=".repeat((4 - (b64url.length % 4)) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  }

  function chosenWards() {
    return [...wardsBox.querySelectorAll("input:checked")].map((i) => i.value);
  }

  function state(subscribed) {
    onBtn.hidden = subscribed;
    offBtn.hidden = !subscribed;
    panel.dataset.subscribed = subscribed ? "true" : "false";
  }

  async function api(method, body) {
    const r = await fetch("/api/push/subscriptions", {
      method,
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error("HTTP " + r.status);
    return r;
  }

  async function subscribe() {
    const wards = chosenWards();
    if (!wards.length) { say("msgWards"); return; }
    const permission = await Notification.requestPermission();
    if (permission !== "granted") { say("msgDenied"); return; }
    try {
      const sub = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(key) });
      await api("POST", { subscription: sub.toJSON(), wards });
      state(true);
      say("msgOn");
    } catch (e) {
      // no push service reachable (no internet), or the browser refused
      say("msgFailed", String(e && e.message ? e.message : e));
    }
  }

  async function unsubscribe() {
    const sub = await registration.pushManager.getSubscription();
    if (sub) {
      try { await api("DELETE", { endpoint: sub.endpoint }); } catch (e) { /* forgotten already */ }
      await sub.unsubscribe();
    }
    state(false);
    say("msgOff");
  }

  async function start() {
    if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
      return;  // e.g. iOS outside a home-screen web app: the panel stays hidden
    }
    const r = await fetch("/api/push/key");
    if (!r.ok) return;
    const info = await r.json();
    if (!info.public_key) return;
    key = info.public_key;
    wardsBox.replaceChildren(...info.wards.map((w) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = w.id;
      box.checked = true;
      label.append(box, document.createTextNode(" " + w.name));
      return label;
    }));
    registration = await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    const existing = await registration.pushManager.getSubscription();
    state(Boolean(existing));
    panel.hidden = false;
    panel.dataset.ready = "true";
    onBtn.addEventListener("click", subscribe);
    offBtn.addEventListener("click", unsubscribe);
  }

  start().catch((e) => { status.textContent = String(e); });
})();
