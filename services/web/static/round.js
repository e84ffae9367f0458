// The digital round (docs/round.md): one card per resident, verdict by colour and word,
// kept live by the alarm stream (each alarm change and each ping re-reads /api/round).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("round-data").textContent);
  const t = data.texts;
  const list = document.getElementById("residents");
  const statusLine = document.getElementById("round-status");
  const wardSelect = document.getElementById("ward");
  let loading = false;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function stateLine(r) {
    const s = r.state;
    const parts = [];
    if (s.in_bed === true) parts.push(t.round_in_bed);
    if (s.in_bed === false) parts.push(t.round_out_of_bed);
    if (s.presence === "absent") parts.push(t.round_absent);
    if (s.movement) parts.push(s.movement === "still" ? t.round_still : t.round_moving);
    if (s.diaper_level !== null) parts.push(t.round_diaper + " " + Math.round(s.diaper_level) + " %");
    if (s.dose) parts.push(t.round_dose + ": " + t["round_dose_" + s.dose]);
    return parts.join(" · ");
  }

  async function check(residentId, result, button) {
    button.disabled = true;
    const r = await fetch("/api/round/" + encodeURIComponent(residentId) + "/check", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": data.csrf },
      body: JSON.stringify({ result: result }),
    });
    button.disabled = false;
    if (r.ok) load();
  }

  function card(r) {
    const li = el("li", "round-card verdict-" + r.verdict);
    li.dataset.resident = r.resident_id;
    const head = el("div", "round-head");
    head.append(el("strong", "round-name", data.residents[r.resident_id] || r.resident_id));
    head.append(el("span", "round-room", t.room + " " + r.room));
    head.append(el("span", "verdict verdict-" + r.verdict, t["verdict_" + r.verdict]));
    li.append(head);
    li.append(el("p", "round-reasons", r.reasons.join(" · ")));
    const line = stateLine(r);
    if (line) li.append(el("p", "round-state", line));
    if (r.sensors.offline.length) {
      li.append(el("p", "round-offline", t.round_offline + ": " + r.sensors.offline.join(", ")));
    }
    const foot = el("div", "round-foot");
    if (r.plan && r.plan.due) foot.append(el("span", "tag due", t.round_check_due));
    if (r.last_check) {
      const at = new Date(r.last_check.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      const word = r.last_check.result === "ok" ? t.round_checked_ok : t.round_visit_needed;
      foot.append(el("span", "round-last", t.round_last_check + " " + at + " · " + word + " · " + r.last_check.by));
    }
    const ok = el("button", "check-ok", t.round_check_ok);
    ok.type = "button";
    ok.addEventListener("click", () => check(r.resident_id, "ok", ok));
    const visit = el("button", "secondary check-visit", t.round_visit_needed);
    visit.type = "button";
    visit.addEventListener("click", () => check(r.resident_id, "visit_needed", visit));
    foot.append(ok, visit);
    li.append(foot);
    return li;
  }

  async function load() {
    if (loading) return;
    loading = true;
    try {
      const ward = wardSelect.value;
      const r = await fetch("/api/round" + (ward ? "?ward=" + encodeURIComponent(ward) : ""));
      if (!r.ok) { statusLine.textContent = t.round_unavailable; return; }
      const body = await r.json();
      const order = { visit: 0, look: 1, ok: 2 };
      body.residents.sort((a, b) => order[a.verdict] - order[b.verdict] || a.room.localeCompare(b.room));
      list.replaceChildren(...body.residents.map(card));
      statusLine.textContent = "";
    } finally {
      loading = false;
    }
  }

  wardSelect.addEventListener("change", load);
  load();
  const stream = new EventSource("/api/alarms/stream");
  stream.addEventListener("alarm", load);
  stream.addEventListener("ping", load);
})();
