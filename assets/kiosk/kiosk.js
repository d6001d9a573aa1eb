// The shopper's kiosk page: everything it shows comes from the daemon on loopback (session
// over server-sent events, catalog, strings from the one catalogue). No network resources.
"use strict";

const S = {
  lang: "en",
  other: "zh",
  strings: {},
  catalog: null,
  session: null,
  face: null, // GET /api/face, or null when face pay is not set up
  readers: null, // GET /api/readers: is the card reader answering?
  spoken: "", // the page screen last spoken (said once per appearance)
  qrOffered: true,
  local: null, // a local screen: {kind: "enrol_consent"} | {kind: "method", method} | ...
  lastCatalogSeq: -1,
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (k === "class") e.className = v;
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    e.appendChild(typeof k === "string" ? document.createTextNode(k) : k);
  }
  return e;
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["content-type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  return { status: r.status, data };
}

// ---- strings -------------------------------------------------------------------------

function money(minor) {
  const c = S.catalog;
  const exp = c ? c.exponent : 2;
  const cur = c ? c.currency : "";
  const v = (Number(minor) / Math.pow(10, exp)).toFixed(exp);
  const sym = { EUR: "€", USD: "$", GBP: "£", CNY: "¥" }[cur];
  return sym ? sym + v : v + " " + cur;
}

const MONEY_KEYS = new Set(["total", "price", "amount", "charged", "released"]);

function t(id, args) {
  let s = S.strings[id];
  if (s === undefined) return id;
  return s.replace(/\{([a-z_]+)\}/g, (m, k) => {
    if (!args || args[k] === undefined || args[k] === null) return m;
    return MONEY_KEYS.has(k) ? money(args[k]) : String(args[k]);
  });
}

// The catalogue id (and arguments) of the core's prompt: the daemon maps it (one mapping
// for the page and the voice).
function promptKey(s) {
  const k = s && s.prompt_key;
  return k ? [k.id, k.args] : ["welcome", {}];
}

async function loadStrings(lang) {
  const r = await api("GET", "/api/i18n/" + lang);
  if (r.status !== 200) return;
  S.lang = r.data.lang;
  S.other = S.lang === "en" ? "zh" : "en";
  S.strings = r.data.strings;
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  for (const b of document.querySelectorAll("[data-t]")) b.textContent = t(b.dataset.t);
  render();
}

// ---- data ----------------------------------------------------------------------------

async function refreshCatalog() {
  const r = await api("GET", "/api/catalog");
  if (r.status === 200) S.catalog = r.data;
}

async function refreshFace() {
  const r = await api("GET", "/api/face");
  S.face = r.status === 200 ? r.data : null;
}

function listen() {
  const es = new EventSource("/api/events");
  es.addEventListener("session", async (ev) => {
    const s = JSON.parse(ev.data);
    const phaseChanged = !S.session || S.session.phase !== s.phase;
    S.session = s;
    if (s.door_open && !location.pathname.startsWith("/service")) {
      location.href = "/service";
      return;
    }
    if (phaseChanged || S.lastCatalogSeq !== s.journal_seq) {
      S.lastCatalogSeq = s.journal_seq;
      await refreshCatalog();
    }
    if (phaseChanged && s.phase !== "idle" && S.local && S.local.kind !== "method") S.local = null;
    if (phaseChanged && s.phase !== "awaiting_credential" && S.local && S.local.kind === "method") S.local = null;
    if (phaseChanged) S.spoken = "";
    if (phaseChanged && s.phase === "awaiting_credential") {
      const r = await api("GET", "/api/readers");
      S.readers = r.status === 200 ? r.data : null;
    }
    render();
  });
  es.onerror = () => { $("#status").textContent = "…"; };
  es.onopen = () => { $("#status").textContent = ""; };
}

// ---- actions -------------------------------------------------------------------------

async function act(method, path, body) {
  const r = await api(method, path, body);
  if (r.status >= 400 && r.data && r.data.error) {
    $("#status").textContent = r.data.error.message;
  } else {
    $("#status").textContent = "";
  }
  return r;
}

const addItem = (slot) => act("POST", "/api/cart/items", { slot, qty: 1 });
const removeItem = (slot) => act("DELETE", "/api/cart/items/" + slot);

// ---- views ---------------------------------------------------------------------------

function productButton(slot) {
  const soldOut = !slot.available;
  return el("button", {
    class: "product", id: "p-" + slot.id, disabled: soldOut,
    "aria-label": slot.id + " " + slot.name + " " + money(slot.price),
    onclick: () => addItem(slot.id),
  },
  el("span", { class: "code" }, slot.id),
  el("span", { class: "name" }, slot.name),
  el("span", { class: "price" }, money(slot.price)),
  el("span", { class: "stock" }, soldOut ? t("ui.sold_out") : t("ui.stock", { count: slot.stock })));
}

function shopView() {
  const s = S.session;
  const slots = S.catalog ? S.catalog.slots.filter((x) => x.enabled) : [];
  const lines = (s && s.cart) || [];
  const cart = el("div", { class: "cart", id: "cart" },
    el("h2", {}, t("ui.cart")),
    el("ul", {}, lines.map((l) => el("li", {},
      el("span", {}, `${l.qty} × ${l.slot} ${l.name}`),
      el("b", {}, money(l.price * l.qty)),
      el("button", { class: "small ghost", "aria-label": t("ui.remove") + " " + l.slot, onclick: () => removeItem(l.slot) }, "✕")))),
    el("div", { class: "total", id: "total" }, t("ui.total") + " " + money(s ? s.total : 0)),
    el("button", { class: "big primary", id: "pay", disabled: lines.length === 0, onclick: () => act("POST", "/api/checkout") }, t("ui.pay")),
    lines.length ? el("button", { class: "small ghost", id: "cancel", onclick: () => act("POST", "/api/cancel") }, t("ui.cancel")) : null,
    (!s || s.phase === "idle") && S.face && S.face.available
      ? el("div", { class: "row" },
        el("button", { class: "small ghost", id: "enrol", onclick: () => { S.local = { kind: "enrol_consent" }; render(); } }, t("ui.enrol_face")),
        el("button", { class: "small ghost", id: "erase", onclick: startErase }, t("ui.erase_face")))
      : null);
  return el("div", { class: "shop" }, el("div", { class: "grid", id: "grid" }, slots.map(productButton)), cart);
}

// Says one of the page's own screens (not a core prompt) once per appearance.
function speak(id) {
  if (S.spoken === id) return;
  S.spoken = id;
  api("POST", "/api/kiosk/screen", { id });
}

function methodsView() {
  const s = S.session;
  const face = S.face && S.face.available;
  const readerDown = S.readers && S.readers.nfc && !S.readers.nfc.ok;
  const offlineNote = !s.online ? el("p", { id: "offline-note" }, t("screen.offline_card_only")) : null;
  const readerNote = readerDown ? el("p", { id: "reader-note", class: "result bad" }, t("screen.card_reader_down")) : null;
  // What it means for the shopper, said as well as shown.
  if (readerDown) speak("screen.card_reader_down");
  else if (!s.online) speak("screen.offline_card_only");
  const chosen = S.local && S.local.kind === "method" ? S.local.method : null;
  const tile = (m, label) => el("button", {
    class: "method", id: "method-" + m,
    onclick: () => {
      if (m === "qr") return startQr();
      S.local = { kind: "method", method: m };
      render();
    },
  }, label);
  const hint = { card: "present_credential.card", code: "present_credential.code", face: "present_credential.face" }[chosen];
  return el("div", { class: "center" },
    el("div", { class: "total" }, t("ui.total") + " " + money(s.total)),
    el("p", {}, t("screen.choose_method")),
    readerNote,
    el("div", { class: "methods" },
      readerDown ? null : tile("card", t("ui.card")),
      tile("code", t("ui.code")),
      face ? tile("face", t("ui.face")) : null,
      S.qrOffered ? tile("qr", t("ui.qr")) : null),
    hint && S.strings[hint] ? el("p", { id: "method-hint" }, t(hint)) : null,
    offlineNote,
    el("button", { class: "big danger", id: "cancel", onclick: () => act("POST", "/api/cancel") }, t("ui.cancel")));
}

async function startQr() {
  const r = await act("POST", "/api/pay/qr");
  if (r.status === 409 && r.data && r.data.error && r.data.error.code === "qr_not_offered") {
    S.qrOffered = false;
    render();
  }
}

function busyView(text) {
  return el("div", { class: "center" }, el("div", { class: "spinner", role: "progressbar" }), el("p", {}, text || ""));
}

function qrView() {
  const s = S.session;
  return el("div", { class: "center" },
    el("p", {}, t("screen.qr")),
    el("img", { class: "qr", id: "pay-qr", alt: t("screen.qr"), src: "/api/pay/qr.png?sid=" + s.sid }),
    el("div", { class: "total" }, money(s.total)),
    el("button", { class: "big danger", id: "cancel", onclick: () => act("POST", "/api/cancel") }, t("ui.cancel")));
}

function receiptView() {
  const s = S.session;
  const r = s.receipt || { items: [], charged: 0, released: 0 };
  const failed = r.items.filter((i) => !i.delivered);
  const ok = r.charged > 0;
  const result = ok && failed.length === 0
    ? el("div", { class: "result ok", id: "result" }, t("take_item"))
    : failed.length && !ok
      ? el("div", { class: "result bad", id: "result" }, t("vend_failed_not_charged", { slot: failed[0].slot }))
      : el("div", { class: "result ok", id: "result" }, t("ui.charged") + " " + money(r.charged));
  return el("div", { class: "center", id: "receipt" },
    result,
    el("table", {}, r.items.map((i) => el("tr", {},
      el("td", {}, i.slot), el("td", {}, money(i.price)),
      el("td", { class: i.delivered ? "" : "result bad" }, i.delivered ? "✓" : t("ui.not_charged"))))),
    el("div", { class: "total" }, t("ui.charged") + " " + money(r.charged)),
    r.released > 0 ? el("div", {}, t("ui.not_charged") + " " + money(r.released)) : null,
    el("div", { class: "row" },
      el("img", { class: "qr small", id: "receipt-qr", alt: t("ui.receipt_link"), src: "/api/receipt.png?sid=" + r.sid }),
      el("p", {}, t("ui.receipt_link"))),
    el("button", { class: "big primary", id: "done", onclick: () => act("POST", "/api/dismiss") }, t("ui.done")));
}

// Face enrolment and erasure (kiosk tasks; GET /api/face shows where they stand).
function enrolConsentView() {
  const name = el("input", { type: "text", id: "enrol-name", autocomplete: "off", "aria-label": t("ui.name"), placeholder: t("ui.name") });
  const box = el("input", { type: "checkbox", id: "enrol-consent" });
  return el("div", { class: "center" },
    el("p", {}, t("screen.enrol.consent")),
    name,
    el("label", { class: "consent" }, box, t("ui.consent_text")),
    el("div", { class: "row" },
      el("button", {
        class: "big primary", id: "enrol-start",
        onclick: async () => {
          const r = await act("POST", "/api/face/enrol", { consent: box.checked, name: name.value });
          if (r.status === 200) { S.local = { kind: "task" }; pollFace(); }
        },
      }, t("ui.enrol_face")),
      el("button", { class: "big ghost", id: "enrol-cancel", onclick: () => { S.local = null; render(); } }, t("ui.cancel"))));
}

async function startErase() {
  const r = await act("POST", "/api/face/erase");
  if (r.status === 200) { S.local = { kind: "task" }; pollFace(); }
}

async function pollFace() {
  await refreshFace();
  render();
  const task = S.face && S.face.task;
  if (S.local && S.local.kind === "task" && task && !["done", "failed"].includes(task.step)) {
    setTimeout(pollFace, 500);
  }
}

function taskView() {
  const task = S.face && S.face.task;
  if (!task) return busyView("");
  const kind = task.kind;
  let text;
  if (task.step === "awaiting_proof") text = t(`screen.${kind}.proof`);
  else if (task.step === "capturing") text = t("screen.enrol.capturing", { count: task.captures, of: task.need });
  else if (task.step === "saving") text = "…";
  else if (task.step === "done") text = t(kind === "enrol" ? "screen.enrol.done" : "screen.erase.done", { name: task.masked_name });
  else text = t("screen.enrol.failed") + (task.error ? " (" + task.error[1] + ")" : "");
  const finished = ["done", "failed"].includes(task.step);
  return el("div", { class: "center", id: "task" },
    el("p", { id: "task-text" }, text),
    task.step === "capturing" ? el("progress", { max: task.need, value: task.captures }) : null,
    el("button", {
      class: "big " + (finished ? "primary" : "ghost"), id: "task-close",
      onclick: async () => { if (!finished) await api("POST", "/api/face/cancel"); S.local = null; refreshFace().then(render); },
    }, finished ? t("ui.done") : t("ui.cancel")));
}

function render() {
  const s = S.session;
  if (!s || !S.catalog) return;
  const [pid, pargs] = promptKey(s);
  let promptText = t(pid, pargs);
  const view = $("#view");
  let v;
  if (S.local && S.local.kind === "enrol_consent") { v = enrolConsentView(); promptText = t("screen.enrol.consent"); }
  else if (S.local && S.local.kind === "task") { v = taskView(); }
  else switch (s.phase) {
    case "idle":
    case "shopping": v = shopView(); if (s.phase === "idle") promptText = t("screen.products"); break;
    case "awaiting_credential": v = methodsView(); break;
    case "authorising": v = s.paying_by === "merchant-qr" ? qrView() : busyView(t("authorising")); break;
    case "vending": v = busyView(promptText); break;
    case "settling": v = busyView(t("settling")); break;
    case "receipt": v = receiptView(); break;
    default: v = busyView("");
  }
  $("#prompt").textContent = promptText;
  // Keep the typed name while the consent screen re-renders on session events.
  const typed = $("#enrol-name") ? $("#enrol-name").value : null;
  const ticked = $("#enrol-consent") ? $("#enrol-consent").checked : null;
  view.replaceChildren(v);
  if (typed !== null && $("#enrol-name")) $("#enrol-name").value = typed;
  if (ticked !== null && $("#enrol-consent")) $("#enrol-consent").checked = ticked;
  const warn = s.warned && ["shopping", "awaiting_credential"].includes(s.phase);
  $("#overlay").hidden = !warn;
  if (warn) $("#overlay-text").textContent = t("timeout_warning", { seconds: Math.ceil((s.deadline_in_ms || 0) / 1000) });
}

// ---- start ---------------------------------------------------------------------------

$("#lang").addEventListener("click", () => {
  api("POST", "/api/kiosk/language", { lang: S.other });
  loadStrings(S.other);
});
$("#extend").addEventListener("click", () => act("POST", "/api/extend"));
$("#repeat").addEventListener("click", () => api("POST", "/api/kiosk/repeat"));
$("#talk").addEventListener("click", () => api("POST", "/api/kiosk/listen"));
async function nudgeVolume(step) {
  const k = await api("GET", "/api/kiosk");
  const now = k.data && k.data.voice ? k.data.voice.volume : 80;
  await api("POST", "/api/kiosk/volume", { percent: Math.max(0, Math.min(100, now + step)) });
}
$("#vol-down").addEventListener("click", () => nudgeVolume(-20));
$("#vol-up").addEventListener("click", () => nudgeVolume(20));
setInterval(() => { if (S.session && S.session.warned) render(); }, 1000);

(async () => {
  const k = await api("GET", "/api/kiosk");
  const lang = new URLSearchParams(location.search).get("lang") || (k.data && k.data.language) || "en";
  if (k.data && !k.data.voice) { $("#vol-down").hidden = true; $("#vol-up").hidden = true; $("#repeat").hidden = true; }
  if (k.data && k.data.listen === "push") $("#talk").hidden = false;
  await Promise.all([refreshCatalog(), refreshFace()]);
  await loadStrings(lang);
  listen();
})();
