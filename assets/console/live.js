// Live calls: keeps the table current from the server-sent events of /console/live/events
// (one "calls" event every 500 ms) and hangs up through fetch with the CSRF header.
"use strict";
(function () {
  const tbody = document.querySelector("#live-calls tbody");
  const status = document.getElementById("live-status");
  const count = document.getElementById("live-count");
  const empty = document.getElementById("live-empty");
  if (!tbody) return;

  function dur(ms) {
    const s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }
  function cell(tr, text) {
    const td = document.createElement("td");
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }
  function row(c) {
    const tr = document.createElement("tr");
    tr.dataset.sid = c.call_sid;
    const td = document.createElement("td");
    const a = document.createElement("a");
    a.href = "/console/calls/" + encodeURIComponent(c.call_sid);
    a.textContent = c.from || "unknown";
    td.appendChild(a);
    tr.appendChild(td);
    cell(tr, c.agent_profile || "—");
    cell(tr, dur(c.duration_ms));
    cell(tr, c.speaking);
    const n = c.now || {};
    const lvl = cell(tr, n.level_dbfs == null ? "—" : Math.round(n.level_dbfs) + " dBFS ");
    if (n.level_dbfs != null) {
      const m = document.createElement("meter");
      m.min = -60; m.max = 0; m.low = -45; m.high = -6; m.optimum = -20;
      m.value = Math.max(-60, n.level_dbfs);
      m.setAttribute("aria-label", "Inbound level");
      lvl.appendChild(m);
    }
    cell(tr, (n.jitter_ms || 0).toFixed(1) + " ms");
    cell(tr, (n.loss_pct || 0).toFixed(1) + " %");
    cell(tr, n.mos == null ? "—" : n.mos.toFixed(2));
    cell(tr, (n.alerts || []).join(", "));
    const act = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "danger hangup";
    b.textContent = "Hang up";
    b.setAttribute("aria-label", "Hang up the call from " + (c.from || "unknown"));
    b.addEventListener("click", () => hangup(c.call_sid, b));
    act.appendChild(b);
    tr.appendChild(act);
    return tr;
  }
  async function hangup(sid, button) {
    button.disabled = true;
    button.textContent = "Hanging up…";
    try {
      const r = await fetch("/console/calls/" + encodeURIComponent(sid) + "/hangup", {
        method: "POST",
        headers: { "X-CSRF-Token": window.voxbridge.csrf() },
        credentials: "same-origin",
      });
      if (!r.ok) {
        const p = await r.json().catch(() => ({}));
        status.textContent = "Hang-up failed: " + (p.detail || r.status);
        button.disabled = false;
        button.textContent = "Hang up";
      } else {
        status.textContent = "Hang-up requested for " + sid + ".";
      }
    } catch (e) {
      status.textContent = "Hang-up failed: " + e;
      button.disabled = false;
    }
  }
  function render(calls) {
    // Keep the focused button's row across updates (keyboard users).
    const focusedSid = document.activeElement && document.activeElement.closest("tr")
      ? document.activeElement.closest("tr").dataset.sid : null;
    const rows = calls.map(row);
    tbody.replaceChildren(...rows);
    count.textContent = String(calls.length);
    empty.hidden = calls.length > 0;
    if (focusedSid) {
      const b = tbody.querySelector('tr[data-sid="' + CSS.escape(focusedSid) + '"] button');
      if (b) b.focus();
    }
  }
  const es = new EventSource("/console/live/events");
  es.addEventListener("open", () => { status.textContent = "Live."; });
  es.addEventListener("calls", (ev) => {
    try { render(JSON.parse(ev.data)); } catch (e) { status.textContent = "Bad update: " + e; }
  });
  es.addEventListener("error", () => { status.textContent = "Live updates interrupted; retrying…"; });
  // Wire the server-rendered buttons too (before the first event arrives).
  tbody.querySelectorAll("tr[data-sid] form").forEach((f) => {
    f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      hangup(f.closest("tr").dataset.sid, f.querySelector("button"));
    });
  });
})();
