// The sim panel: the physical world of the simulated machine, for a person trying it out.
"use strict";
const $ = (s) => document.querySelector(s);
async function post(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}) });
  let d = null; try { d = await r.json(); } catch (_) {}
  $("#status").textContent = r.status >= 400 && d && d.error ? d.error.message : "ok";
  world();
}
const fault = (f) => post("/sim/fault", { slot: $("#slot").value, fault: f, count: 1 });
$("#tap").onclick = () => post("/sim/nfc/tap", { id: $("#card-id").value });
$("#remove").onclick = () => post("/sim/nfc/remove");
$("#wedge").onclick = () => post("/sim/nfc/fault", { fault: "wedge", count: 1 });
$("#show-code").onclick = () => post("/sim/camera/show", { text: $("#code").value });
$("#clear-camera").onclick = () => post("/sim/camera/clear");
$("#show-face").onclick = () => {
  const f = $("#face-file").files[0];
  if (!f) return;
  const rd = new FileReader();
  rd.onload = () => post("/sim/camera/show", { image_base64: String(rd.result).split(",")[1] });
  rd.readAsDataURL(f);
};
$("#jam").onclick = () => fault("jam");
$("#missed").onclick = () => fault("missed-drop");
$("#double").onclick = () => fault("double-drop");
$("#stuck").onclick = () => fault("stuck-home");
$("#door-open").onclick = () => post("/sim/door", { open: true });
$("#door-close").onclick = () => post("/sim/door", { open: false });
async function world() {
  const r = await fetch("/sim/state"); $("#world").textContent = JSON.stringify(await r.json(), null, 1);
}
world(); setInterval(world, 2000);
