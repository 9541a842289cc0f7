// A tiny element builder: h("button", {onclick, class: "x"}, "text", child...). Text is always
// set as text (never parsed as HTML), so API data cannot inject markup.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "selected" || k === "disabled") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

let uid = 0;
export const nextId = (prefix = "f") => `${prefix}-${++uid}`;

// A labelled form field: label + control (+ an error slot the API's errors are written into).
export function field(labelText, control, { hint, errorKey } = {}) {
  if (!control.id) control.id = nextId();
  const err = h("p", { class: "field-error", id: `${control.id}-err`, hidden: true });
  control.setAttribute("aria-describedby", err.id);
  if (errorKey) control.dataset.loc = errorKey;
  return h(
    "div",
    { class: "field" },
    h("label", { for: control.id }, labelText),
    control,
    hint ? h("small", { class: "hint" }, hint) : null,
    err,
  );
}

export function showFieldError(control, message) {
  if (!control.id) control.id = nextId("c");
  let err = document.getElementById(`${control.id}-err`);
  if (!err) {
    // A control made without field() (a fieldset, a row): its message goes at its end.
    err = h("p", { class: "field-error", id: `${control.id}-err` });
    control.append(err);
    control.setAttribute("aria-describedby", err.id);
  }
  control.setAttribute("aria-invalid", "true");
  err.textContent = message;
  err.hidden = false;
}

export function clearFieldErrors(root) {
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of root.querySelectorAll(".field-error")) {
    el.textContent = "";
    el.hidden = true;
  }
}

export function fmtTime(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function fmtValue(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}

// A confirmation in a modal <dialog> (keyboard: Esc cancels, focus starts on Cancel).
export function confirmDialog(title, text, okLabel = "Confirm") {
  const dlg = document.getElementById("confirm");
  dlg.querySelector("#confirm-title").textContent = title;
  dlg.querySelector("#confirm-text").textContent = text;
  dlg.querySelector("#confirm-ok").textContent = okLabel;
  dlg.returnValue = "";
  dlg.showModal();
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
  });
}

export function flash(message, kind = "ok") {
  const box = document.getElementById("flash");
  box.replaceChildren(h("p", { class: `flash ${kind}` }, message));
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => box.replaceChildren(), 6000);
}
