// Shared pieces of the screens: the API's field errors on plain forms, the group attributes
// editor, pagers.
import { ApiError, get } from "./api.js";
import { h, nextId, showFieldError, clearFieldErrors } from "./dom.js";

// Show a 400's errors at the form controls whose data-loc is the error's loc after "body"
// (["body", "name"] -> data-loc="name"; ["body", "attributes", 2, "key"] -> the longest match);
// the rest, and every other error, in the form's alert box.
export function showFormErrors(form, e, box) {
  clearFieldErrors(form);
  box.hidden = true;
  if (!(e instanceof ApiError)) throw e;
  const rest = [];
  if (e.status === 400 && e.errors.length) {
    for (const err of e.errors) {
      const path = (err.loc || []).slice(1);
      let target = null;
      for (let n = path.length; n > 0 && !target; n--) target = form.querySelector(`[data-loc="${path.slice(0, n).join(".")}"]`);
      if (target && path[0] !== "rule_tree") showFieldError(target, err.msg);
      else if (path[0] !== "rule_tree") rest.push(`${path.join(" › ")}: ${err.msg}`);
    }
  } else if (e.status === 409 && form.querySelector('[data-loc="custom_id"]') && /custom/i.test(e.message)) {
    showFieldError(form.querySelector('[data-loc="custom_id"]'), e.message);
  } else rest.push(e.message);
  if (rest.length) {
    box.replaceChildren(...rest.map((r) => h("p", {}, r)));
    box.hidden = false;
  }
}

export function attributesEditor(initial = []) {
  const rows = h("div", { class: "attr-rows" });
  function addRow(key = "", value = "") {
    const i = rows.children.length;
    const k = h("input", { value: key, "aria-label": `Attribute ${i + 1} key`, id: nextId("ak") });
    const v = h("input", { value, "aria-label": `Attribute ${i + 1} value`, id: nextId("av") });
    const row = h("div", { class: "attr-row" }, k, v,
      h("button", { type: "button", class: "icon", "aria-label": `Remove attribute ${i + 1}`, onclick: () => { row.remove(); renumber(); } }, "✕"),
      h("p", { class: "field-error", id: `${k.id}-err`, hidden: true }),
      h("p", { class: "field-error", id: `${v.id}-err`, hidden: true }));
    rows.append(row);
    renumber();
  }
  function renumber() {
    [...rows.children].forEach((row, i) => {
      const [k, v] = row.querySelectorAll("input");
      k.dataset.loc = `attributes.${i}.key`;
      v.dataset.loc = `attributes.${i}.value`;
      row.dataset.loc = `attributes.${i}`;
    });
  }
  initial.forEach((a) => addRow(a.key, a.value));
  const el = h("fieldset", { class: "attrs", dataset: { loc: "attributes" } },
    h("legend", {}, "Attributes (key and value)"), rows,
    h("button", { type: "button", onclick: () => { addRow(); rows.lastChild.querySelector("input").focus(); } }, "+ Attribute"));
  const value = () => [...rows.children].map((row) => {
    const [k, v] = row.querySelectorAll("input");
    return { key: k.value, value: v.value };
  }).filter((a) => a.key !== "" || a.value !== "");
  return { el, value };
}

// A list with previous/next through the page's cursor URLs. render(results) -> element.
export function pagedList(firstPath, render, { empty = "Nothing yet.", label = "items" } = {}) {
  const box = h("div", { class: "paged" });
  async function load(path) {
    const page = await get(path);
    const nav = h("div", { class: "pager" },
      h("span", { class: "muted" }, `${page.count} ${label}`),
      h("button", { type: "button", disabled: !page.previous, onclick: () => load(page.previous) }, "‹ Previous"),
      h("button", { type: "button", disabled: !page.next, onclick: () => load(page.next) }, "Next ›"));
    box.replaceChildren(page.results.length ? render(page.results) : h("p", { class: "muted" }, empty), nav);
    return page;
  }
  return { el: box, load: () => load(firstPath) };
}

