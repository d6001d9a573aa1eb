// The service page: stock and restock, test vend, faults, sales today, recent sessions,
// camera preview with what the readers detected. Loopback only, like the API it calls.
"use strict";
const $ = (s) => document.querySelector(s);
let strings = {};
let cat = null;

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) { opts.headers["content-type"] = "application/json"; opts.body = JSON.stringify(body); }
  const r = await fetch(path, opts);
  let data = null; try { data = await r.json(); } catch (_) {}
  if (r.status >= 400 && data && data.error) $("#status").textContent = data.error.message;
  else $("#status").textContent = "";
  return { status: r.status, data };
}
const t = (id) => strings[id] || id;
function money(m) { const e = cat ? cat.exponent : 2; return (m / Math.pow(10, e)).toFixed(e) + " " + (cat ? cat.currency : ""); }
function cell(tr, v) { const td = document.createElement("td"); if (v instanceof Node) td.appendChild(v); else td.textContent = v; tr.appendChild(td); }
function button(label, id, onclick) { const b = document.createElement("button"); b.className = "small"; b.textContent = label; b.id = id; b.onclick = onclick; return b; }

async function refresh() {
  const c = await api("GET", "/api/catalog"); cat = c.data;
  const tb = $("#stock tbody"); tb.replaceChildren();
  const faults = $("#faults"); faults.replaceChildren();
  for (const s of cat.slots) {
    const tr = document.createElement("tr");
    cell(tr, s.id); cell(tr, s.name); cell(tr, money(s.price));
    const inp = document.createElement("input"); inp.type = "number"; inp.min = 0; inp.max = s.capacity; inp.value = s.stock; inp.id = "stock-" + s.id; inp.style.width = "90px"; inp.style.fontSize = "20px";
    cell(tr, inp);
    cell(tr, button(t("ui.service_restock"), "restock-" + s.id, () => api("POST", "/api/service/stock", { slot: s.id, count: Number(inp.value) }).then(refresh)));
    cell(tr, button(t("ui.service_test_vend"), "test-" + s.id, () => api("POST", "/api/service/test-vend", { slot: s.id }).then(refresh)));
    tb.appendChild(tr);
    if (s.fault) {
      const li = document.createElement("li");
      li.textContent = s.id + ": " + s.fault + " ";
      li.appendChild(button(t("ui.service_clear_fault"), "clear-" + s.id, () => api("POST", "/api/service/clear-fault", { slot: s.id }).then(refresh)));
      faults.appendChild(li);
    }
  }
  const r = await api("GET", "/api/service/sessions?limit=15");
  if (r.status === 200) {
    const sb = $("#sessions tbody"); sb.replaceChildren();
    for (const s of r.data.sessions) {
      const tr = document.createElement("tr");
      cell(tr, String(s.sid)); cell(tr, s.opened_iso || ""); cell(tr, s.method || "—"); cell(tr, money(s.charged)); cell(tr, s.outcome || "open");
      sb.appendChild(tr);
    }
    const hours = r.data.today.by_hour; const max = Math.max(1, ...hours);
    $("#sales-total").textContent = money(r.data.today.total) + " · " + r.data.today.count + " sales";
    const svg = $("#sales-chart"); svg.replaceChildren();
    hours.forEach((v, i) => {
      const h = Math.round((v / max) * 120);
      const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
      rect.setAttribute("x", i * 17 + 4); rect.setAttribute("y", 130 - h); rect.setAttribute("width", 13); rect.setAttribute("height", h);
      rect.setAttribute("fill", "#ffd400"); svg.appendChild(rect);
    });
  }
  $("#camera").src = "/api/service/camera.jpg?t=" + Date.now();
  const doc = await api("GET", "/api/service/doctor");
  if (doc.status === 200) {
    const db = $("#doctor tbody"); db.replaceChildren();
    for (const c of doc.data.checks) {
      const tr = document.createElement("tr");
      tr.id = "doctor-" + c.name;
      cell(tr, c.status.toUpperCase()); cell(tr, c.name); cell(tr, c.detail + (c.fix && c.status !== "ok" ? " — " + c.fix : ""));
      db.appendChild(tr);
    }
  }
}

(async () => {
  const k = await api("GET", "/api/kiosk");
  const lang = (k.data && k.data.language) || "en";
  const s = await api("GET", "/api/i18n/" + lang);
  if (s.status === 200) strings = s.data.strings;
  for (const b of document.querySelectorAll("[data-t]")) b.textContent = t(b.dataset.t);
  await refresh();
  setInterval(refresh, 3000);
  const es = new EventSource("/api/events");
  es.addEventListener("session", (ev) => {
    const s = JSON.parse(ev.data);
    if (!s.door_open && new URLSearchParams(location.search).get("stay") === null) location.href = "/";
  });
})();
