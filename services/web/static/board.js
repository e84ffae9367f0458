// The live alarm board: list from the API, changes over Server-Sent Events, a loud banner
// whenever the screen may be stale, and a sound for new high-priority alarms.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("board-data").textContent);
  const t = data.texts;
  const alarms = new Map();
  const told = new Map();  // alarm id -> its delivery records (who was told, when, how)
  const hhmm = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", hourCycle: "h23", timeZone: data.tz });
  const list = document.getElementById("alarms");
  const empty = document.getElementById("empty");
  const banner = document.getElementById("banner");
  const countEl = document.getElementById("alarm-count");
  const soundBtn = document.getElementById("sound");
  const PRIORITY = { high: 0, medium: 1, low: 2 };
  const OUTCOMES = data.outcomes;  // services.alarms.model.Outcome, in its order
  const STALE_MS = data.stale_after_s * 1000;
  let lastHeard = 0;
  let connected = false;
  let degraded = "";
  let audio = null;
  let openResolve = null;
  let clockOffset = Date.parse(data.now) - Date.now();  // hub time minus browser time

  function residentLabel(a) {
    const r = a.resident_id && data.residents[a.resident_id];
    return r ? r : (a.resident_id || "");
  }

  function ago(iso) {
    const s = Math.max(0, Math.round((Date.now() + clockOffset - Date.parse(iso)) / 1000));
    if (s < 60) return `${s} ${t.unit_s}`;
    if (s < 3600) return `${Math.floor(s / 60)} ${t.unit_min}`;
    return `${Math.floor(s / 3600)} ${t.unit_h} ${Math.floor((s % 3600) / 60)} ${t.unit_min}`;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function render() {
    const items = [...alarms.values()].filter((a) => a.state !== "resolved");
    items.sort((a, b) => (PRIORITY[a.priority] - PRIORITY[b.priority]) || (Date.parse(a.raised_at) - Date.parse(b.raised_at)));
    list.replaceChildren(...items.map(card));
    empty.hidden = items.length > 0;
    countEl.textContent = items.length ? "(" + items.length + ")" : "";
  }

  function card(a) {
    const li = el("li", { class: `alarm p-${a.priority} s-${a.state}`, "data-alarm-id": a.alarm_id, "data-rule": a.rule, "data-state": a.state });
    if (a.provisional) {
      // announced by the gateway while the store hangs: nothing can be recorded about it yet
      li.classList.add("provisional");
      li.setAttribute("data-provisional", "true");
    }
    if (a._fresh) li.classList.add("fresh");
    li.append(el("p", { class: "what" }, t["rule_" + a.rule] || a.rule));
    const where = [a.room ? t.room + " " + a.room : "", residentLabel(a)].filter(Boolean).join(" · ");
    li.append(el("p", { class: "where" }, where));
    const meta = el("p", { class: "meta" });
    const state = el("span", { class: "state " + a.state }, t["state_" + a.state] || a.state);
    meta.append(state, document.createTextNode(`${t["priority_" + a.priority]} · ${ago(a.raised_at)} ${t.ago}`));
    if (a.count > 1) meta.append(document.createTextNode(` · ${a.count} ${t.count}`));
    if (a.acknowledged_by) meta.append(document.createTextNode(` · ${t.acknowledged_by} ${a.acknowledged_by}`));
    li.append(meta);
    const phones = toldLine(a);
    if (phones) li.append(phones);
    if (a.provisional) {
      const note = a.kind === "technical" ? t.provisional_technical : t.provisional;
      li.append(el("p", { class: "provisional-note", role: "status" }, note));
      return li;
    }
    const actions = el("div", { class: "actions" });
    if (a.state === "raised" || a.state === "escalated") {
      const ack = el("button", { type: "button", class: "primary ack" }, t.acknowledge);
      ack.addEventListener("click", () => act(a.alarm_id, "ack", {}));
      actions.append(ack);
    }
    const res = el("button", { type: "button", class: "resolve" }, t.resolve);
    res.addEventListener("click", () => { openResolve = openResolve === a.alarm_id ? null : a.alarm_id; render(); });
    actions.append(res);
    li.append(actions);
    if (openResolve === a.alarm_id) {
      const box = el("div", { class: "outcomes", role: "group", "aria-label": t.resolve });
      for (const o of OUTCOMES) {
        const b = el("button", { type: "button", class: "outcome", "data-outcome": o }, t["outcome_" + o]);
        b.addEventListener("click", () => { openResolve = null; act(a.alarm_id, "resolve", { outcome: o }); });
        box.append(b);
      }
      li.append(box);
    }
    return li;
  }

  // "Told: Phone A 23:14 (first · sent), …": per phone its latest alert, in first-told order
  function toldLine(a) {
    const rows = told.get(a.alarm_id) || [];
    const latest = new Map();
    for (const d of rows) {
      if (d.step === "taken" || d.status === "cancelled") continue;
      latest.set(d.phone + "/" + d.channel, d);  // rows come oldest first: the last wins
    }
    const order = [...new Set(rows.filter((d) => latest.has(d.phone + "/" + d.channel)).map((d) => d.phone + "/" + d.channel))];
    if (!order.length) return null;
    const p = el("p", { class: "told", "data-told": String(order.length) });
    p.append(el("span", { class: "label" }, t.told + ": "));
    order.forEach((key, i) => {
      const d = latest.get(key);
      const status = a.acknowledged_by && a.acknowledged_by === d.phone_name ? "acknowledged" : d.status;
      const when = hhmm.format(new Date(d.done_at || d.at));
      const span = el("span", { class: "told-phone d-" + status, "data-phone": d.phone, "data-status": status, "data-step": d.step });
      span.append(document.createTextNode(`${d.phone_name} ${when}`));
      span.append(el("small", {}, ` (${t["step_" + d.step] || d.step} · ${t["delivery_" + status] || status})`));
      if (i) p.append(document.createTextNode(", "));
      p.append(span);
    });
    return p;
  }

  async function act(id, verb, body) {
    const r = await fetch(`/api/alarms/${encodeURIComponent(id)}/${verb}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": data.csrf },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
    if (r.status === 401) { location.href = "/login?next=/"; return; }
    if (r.ok) { upsert(await r.json(), false); } else { await resync(); }
  }

  function upsert(a, isNew) {
    if (a.state === "resolved") { alarms.delete(a.alarm_id); told.delete(a.alarm_id); }
    else {
      a._fresh = isNew;
      alarms.set(a.alarm_id, a);
      if (isNew && a.priority === "high") signal();
    }
    render();
  }

  function signal() {
    if (navigator.vibrate) navigator.vibrate([300, 100, 300]);
    if (!audio) return;
    const now = audio.currentTime;
    for (const start of [0, 0.35, 0.7]) {
      const o = audio.createOscillator(); const g = audio.createGain();
      o.frequency.value = 880; o.connect(g); g.connect(audio.destination);
      g.gain.setValueAtTime(0.4, now + start); g.gain.setValueAtTime(0, now + start + 0.25);
      o.start(now + start); o.stop(now + start + 0.3);
    }
  }

  soundBtn.addEventListener("click", () => {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    audio.resume(); soundBtn.hidden = true;
  });

  async function resync() {
    const r = await fetch("/api/alarms?state=active", { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login?next=/"; return; }
    if (!r.ok) throw new Error("resync failed: " + r.status);
    const fresh = await r.json();
    alarms.clear();
    for (const a of fresh) alarms.set(a.alarm_id, a);
    render();
  }

  function showBanner() {
    const stale = !connected || Date.now() - lastHeard > STALE_MS;
    if (stale) { banner.textContent = t.connection_lost; banner.className = "banner"; banner.hidden = false; }
    else if (degraded) { banner.textContent = t.hub_degraded.replace("{what}", degraded); banner.className = "banner degraded"; banner.hidden = false; }
    else { banner.hidden = true; }
    document.body.dataset.connection = stale ? "lost" : "ok";
  }

  function connect() {
    const es = new EventSource("/api/alarms/stream");
    es.addEventListener("open", async () => {
      try { await resync(); connected = true; lastHeard = Date.now(); } catch (e) { connected = false; }
      showBanner();
    });
    es.addEventListener("alarm", (ev) => {
      lastHeard = Date.now();
      const env = JSON.parse(ev.data);
      upsert(env.alarm, env.type === "new");
    });
    es.addEventListener("deliveries", (ev) => {
      lastHeard = Date.now();
      const u = JSON.parse(ev.data);
      told.set(u.alarm_id, u.deliveries);
      if (alarms.has(u.alarm_id)) render();
    });
    es.addEventListener("ping", (ev) => {
      lastHeard = Date.now();
      const p = JSON.parse(ev.data);
      if (p.now) clockOffset = Date.parse(p.now) - Date.now();
      degraded = p.status === "ok" ? "" : Object.entries(p.components || {}).filter(([, v]) => v !== "ok").map(([k]) => k).join(", ");
      showBanner();
    });
    es.addEventListener("error", () => {
      connected = false; showBanner();
      if (es.readyState === EventSource.CLOSED) { setTimeout(connect, 2000); }
    });
  }

  setInterval(() => { showBanner(); render(); }, 1000);
  render();
  connect();
})();
