// The rule builder: an AND of OR buckets of conditions, built entirely from the attribute
// catalogue (labels, categories, each attribute's allowed conditions, data type and whether it
// takes window_days), with a live preview and the API's validation errors at their fields.
import { ApiError, post } from "./api.js";
import { h, nextId, debounce, fmtTime } from "./dom.js";

// Readable names of the contract's conditions (a condition the catalogue names that is not
// here is shown by its key, so a new one still works).
const CONDITION_TEXT = {
  equals: "equals", not_equals: "does not equal",
  greater_than: "is greater than", greater_than_or_equal: "is at least",
  less_than: "is less than", less_than_or_equal: "is at most", between: "is between",
  in: "is one of", not_in: "is none of",
  contains: "contains", not_contains: "does not contain",
  starts_with: "starts with", ends_with: "ends with",
  before: "is before", after: "is after",
  within_last_x_days: "is within the last … days", not_within_last_x_days: "is not within the last … days",
  is: "is", is_empty: "is empty", is_not_empty: "is not empty",
};
const BOOLEAN_CONDITIONS = new Set(["is", "is_empty", "is_not_empty"]);
const DAYS_CONDITIONS = new Set(["within_last_x_days", "not_within_last_x_days"]);
const LIST_CONDITIONS = new Set(["in", "not_in"]);

export const conditionText = (c) => CONDITION_TEXT[c] || c.replaceAll("_", " ");
const titleCase = (s) => s.charAt(0).toUpperCase() + s.slice(1);

// An AND of OR buckets of leaves, or null when the tree has another shape (then it is edited as
// JSON). Shapes that mean the same (a bare leaf, an OR of leaves, an AND with bare leaves) are
// read as buckets.
export function toBuckets(tree) {
  const isLeaf = (n) => n && typeof n === "object" && "attribute" in n && !("children" in n);
  const isOrOfLeaves = (n) => n && n.operator === "OR" && Array.isArray(n.children) && n.children.every(isLeaf);
  if (!tree) return null;
  if (isLeaf(tree)) return [[{ ...tree }]];
  if (isOrOfLeaves(tree)) return [tree.children.map((l) => ({ ...l }))];
  if (tree.operator === "AND" && Array.isArray(tree.children)) {
    const buckets = [];
    for (const c of tree.children) {
      if (isLeaf(c)) buckets.push([{ ...c }]);
      else if (isOrOfLeaves(c)) buckets.push(c.children.map((l) => ({ ...l })));
      else return null;
    }
    return buckets;
  }
  return null;
}

function fromBuckets(buckets) {
  return {
    operator: "AND",
    children: buckets.map((leaves) => ({
      operator: "OR",
      children: leaves.map((l) => {
        const leaf = { attribute: l.attribute, condition: l.condition, value: l.value };
        if (l.window_days !== undefined && l.window_days !== null) leaf.window_days = l.window_days;
        return leaf;
      }),
    })),
  };
}

function defaultValue(attr, condition) {
  if (BOOLEAN_CONDITIONS.has(condition)) return true;
  if (DAYS_CONDITIONS.has(condition)) return 30;
  if (condition === "between") return [null, null];
  if (LIST_CONDITIONS.has(condition)) return [];
  if (attr?.data_type === "string") return "";
  return null;
}

// datetime-local inputs are read as UTC (the console says so): the API's own rule for
// timestamps without a zone.
const toUtc = (v) => (v ? (v.length === 16 ? `${v}:00Z` : `${v}Z`) : null);
const fromUtc = (v) => (typeof v === "string" ? v.replace(/Z$|[+-]00:00$/, "").slice(0, 19) : "");

function scalarInput(attr, value, loc, label, onValue) {
  const type = attr.data_type;
  let input;
  if (type === "number") {
    input = h("input", { type: "number", step: "any", value: value ?? "", inputmode: "decimal" });
    input.addEventListener("input", () => onValue(input.value === "" ? null : Number(input.value)));
  } else if (type === "datetime") {
    input = h("input", { type: "datetime-local", step: 1, value: fromUtc(value) });
    input.addEventListener("input", () => onValue(toUtc(input.value)));
  } else {
    input = h("input", { type: "text", value: value ?? "" });
    input.addEventListener("input", () => onValue(input.value));
  }
  input.setAttribute("aria-label", label);
  input.dataset.loc = loc;
  return input;
}

export function ruleBuilder(catalogue, initialTree, { previewSample = 10 } = {}) {
  const byKey = new Map(catalogue.map((a) => [a.key, a]));
  let buckets = initialTree ? toBuckets(initialTree) : [[blankLeaf()]];
  let rawTree = buckets ? null : initialTree; // a tree of another shape, edited as JSON
  if (!buckets) buckets = [];

  const root = h("div", { class: "builder" });
  const bucketsEl = h("div", { class: "buckets" });
  const general = h("ul", { class: "errors", role: "alert", hidden: true });
  const jsonArea = h("textarea", { rows: 12, spellcheck: "false", class: "json", id: nextId("json") });
  const jsonErr = h("p", { class: "field-error", hidden: true });
  const count = h("output", { class: "count", "aria-live": "polite" }, "—");
  const previewNote = h("p", { class: "muted" });
  const sample = h("div", { class: "sample" });

  function blankLeaf() {
    return { attribute: "", condition: "", value: null };
  }

  function tree() {
    return rawTree ?? fromBuckets(buckets);
  }

  function complete() {
    return rawTree !== null || (buckets.length > 0 && buckets.every((b) => b.length && b.every((l) => l.attribute && l.condition)));
  }

  function changed({ rerender = false } = {}) {
    if (rerender) render();
    jsonArea.value = JSON.stringify(tree(), null, 2);
    schedulePreview();
    root.dispatchEvent(new Event("change"));
  }

  function attributeSelect(leaf, loc) {
    const sel = h("select", { "aria-label": "Attribute", dataset: { loc } }, h("option", { value: "" }, "Choose an attribute…"));
    const groups = new Map();
    for (const a of catalogue) {
      if (!groups.has(a.category)) groups.set(a.category, h("optgroup", { label: titleCase(a.category) }));
      groups.get(a.category).append(
        h("option", { value: a.key, title: a.description || a.key, selected: a.key === leaf.attribute }, a.label),
      );
    }
    sel.append(...groups.values());
    if (leaf.attribute && !byKey.has(leaf.attribute)) {
      // A key the catalogue does not list (an alias, or a deleted custom attribute): kept as is
      // so the API can say what is wrong with it.
      sel.append(h("option", { value: leaf.attribute, selected: true }, `${leaf.attribute} (not in the catalogue)`));
    }
    sel.addEventListener("change", () => {
      const attr = byKey.get(sel.value);
      leaf.attribute = sel.value;
      leaf.condition = attr?.conditions.includes(leaf.condition) ? leaf.condition : attr?.conditions[0] || "";
      leaf.value = defaultValue(attr, leaf.condition);
      if (!attr?.supports_window) delete leaf.window_days;
      changed({ rerender: true });
      root.querySelector(`[data-loc="${loc}"]`)?.focus();
    });
    return sel;
  }

  function conditionSelect(leaf, attr, loc) {
    const sel = h("select", { "aria-label": "Condition", dataset: { loc } });
    const allowed = attr ? attr.conditions : [];
    if (!allowed.includes(leaf.condition) && leaf.condition) {
      sel.append(h("option", { value: leaf.condition, selected: true }, `${leaf.condition} (not allowed)`));
    }
    for (const c of allowed) sel.append(h("option", { value: c, selected: c === leaf.condition }, conditionText(c)));
    sel.disabled = !attr && !leaf.condition;
    sel.addEventListener("change", () => {
      const before = leaf.condition;
      leaf.condition = sel.value;
      const kind = (c) => (BOOLEAN_CONDITIONS.has(c) ? "b" : DAYS_CONDITIONS.has(c) ? "d" : c === "between" ? "r" : LIST_CONDITIONS.has(c) ? "l" : "s");
      if (kind(before) !== kind(leaf.condition)) leaf.value = defaultValue(attr, leaf.condition);
      changed({ rerender: true });
      root.querySelector(`[data-loc="${loc}"]`)?.focus();
    });
    return sel;
  }

  function valueControl(leaf, attr, loc) {
    const set = (v) => {
      leaf.value = v;
      changed();
    };
    const c = leaf.condition;
    const wrap = h("span", { class: "value" });
    if (!attr || !c) return wrap;
    if (BOOLEAN_CONDITIONS.has(c)) {
      const sel = h("select", { "aria-label": "Value", dataset: { loc } },
        h("option", { value: "true", selected: leaf.value !== false }, c === "is" ? "true" : "yes"),
        h("option", { value: "false", selected: leaf.value === false }, c === "is" ? "false" : "no"));
      sel.addEventListener("change", () => set(sel.value === "true"));
      wrap.append(sel);
    } else if (DAYS_CONDITIONS.has(c)) {
      const input = h("input", { type: "number", min: 0, max: 3650, step: 1, value: leaf.value ?? "", "aria-label": "Days", dataset: { loc } });
      input.addEventListener("input", () => set(input.value === "" ? null : Number(input.value)));
      wrap.append(input, h("span", { class: "unit" }, "days"));
    } else if (c === "between") {
      const pair = Array.isArray(leaf.value) ? [...leaf.value] : [null, null];
      const lo = scalarInput(attr, pair[0], `${loc}.0`, "From", (v) => { pair[0] = v; set([...pair]); });
      const hi = scalarInput(attr, pair[1], `${loc}.1`, "To", (v) => { pair[1] = v; set([...pair]); });
      wrap.append(lo, h("span", { class: "unit" }, "and"), hi);
    } else if (LIST_CONDITIONS.has(c)) {
      const input = h("input", {
        type: "text", value: Array.isArray(leaf.value) ? leaf.value.join(", ") : "",
        "aria-label": "Values, separated by commas", placeholder: "a, b, c", dataset: { loc },
      });
      input.addEventListener("input", () => {
        const parts = input.value.split(",").map((s) => s.trim()).filter((s) => s !== "");
        set(attr.data_type === "number" ? parts.map((p) => (Number.isNaN(Number(p)) ? p : Number(p))) : parts);
      });
      wrap.append(input);
    } else {
      wrap.append(scalarInput(attr, leaf.value, loc, "Value", set));
      if (attr.data_type === "datetime") wrap.append(h("span", { class: "unit" }, "UTC"));
    }
    return wrap;
  }

  function windowControl(leaf, attr, loc) {
    if (!attr?.supports_window) return null;
    const input = h("input", {
      type: "number", min: 1, max: 365, step: 1, value: leaf.window_days ?? "",
      "aria-label": "In the last … days (optional)", dataset: { loc }, class: "window",
    });
    input.addEventListener("input", () => {
      if (input.value === "") delete leaf.window_days;
      else leaf.window_days = Number(input.value);
      changed();
    });
    return h("span", { class: "value" }, h("span", { class: "unit" }, "in the last"), input, h("span", { class: "unit" }, "days (optional)"));
  }

  function leafRow(leaf, bi, li) {
    const loc = `children.${bi}.children.${li}`;
    const attr = byKey.get(leaf.attribute);
    const row = h("li", { class: "leaf", dataset: { loc }, id: nextId("leaf") },
      h("span", { class: "joiner", "aria-hidden": "true" }, li === 0 ? "" : "or"),
      attributeSelect(leaf, `${loc}.attribute`),
      conditionSelect(leaf, attr, `${loc}.condition`),
      valueControl(leaf, attr, `${loc}.value`),
      windowControl(leaf, attr, `${loc}.window_days`),
      h("button", {
        type: "button", class: "icon", "aria-label": `Remove condition ${li + 1} of bucket ${bi + 1}`,
        onclick: () => {
          buckets[bi].splice(li, 1);
          if (!buckets[bi].length) buckets.splice(bi, 1);
          changed({ rerender: true });
        },
      }, "✕"),
    );
    return row;
  }

  function render() {
    bucketsEl.replaceChildren();
    if (rawTree) {
      bucketsEl.append(h("p", { class: "notice" },
        "This rule tree is not an AND of OR buckets, so it is edited as JSON below. ",
        h("button", { type: "button", onclick: () => { rawTree = null; buckets = [[blankLeaf()]]; changed({ rerender: true }); } }, "Start a new rule in the builder")));
      return;
    }
    buckets.forEach((leaves, bi) => {
      const fs = h("fieldset", { class: "bucket", dataset: { loc: `children.${bi}` }, id: nextId("bucket") },
        h("legend", {}, `Bucket ${bi + 1}: any of these`),
        h("ul", { class: "leaves" }, leaves.map((leaf, li) => leafRow(leaf, bi, li))),
        h("div", { class: "row" },
          h("button", { type: "button", onclick: () => { leaves.push(blankLeaf()); changed({ rerender: true }); focusLast(bi); } }, "+ Or condition"),
          h("button", { type: "button", class: "link", onclick: () => { buckets.splice(bi, 1); changed({ rerender: true }); } }, `Remove bucket ${bi + 1}`)),
      );
      if (bi > 0) bucketsEl.append(h("div", { class: "and", "aria-hidden": "true" }, "and"));
      bucketsEl.append(fs);
    });
    bucketsEl.append(h("button", {
      type: "button", class: "add-bucket",
      onclick: () => { buckets.push([blankLeaf()]); changed({ rerender: true }); focusLast(buckets.length - 1); },
    }, "+ And bucket"));
  }

  function focusLast(bi) {
    const rows = bucketsEl.querySelectorAll(`fieldset[data-loc="children.${bi}"] .leaf select`);
    rows[rows.length - 2]?.focus();
  }

  // Errors of the API (loc ["body", "rule_tree", ...]) at the control whose path is the longest
  // prefix of their loc; what matches none is listed above the builder with its path.
  function showErrors(errors) {
    clearErrors();
    const rest = [];
    for (const e of errors) {
      const loc = Array.isArray(e.loc) ? e.loc : [];
      const i = loc.indexOf("rule_tree");
      if (i < 0) continue;
      const path = loc.slice(i + 1);
      let target = null;
      for (let n = path.length; n > 0 && !target && !rawTree; n--) {
        target = root.querySelector(`[data-loc="${path.slice(0, n).join(".")}"]`);
      }
      if (target) {
        target.setAttribute("aria-invalid", "true");
        const holder = target.closest(".leaf, .bucket") || target.parentElement;
        const msg = h("p", { class: "field-error", role: "alert", dataset: { for: target.dataset.loc } }, e.msg);
        if (!target.id) target.id = nextId("c");
        msg.id = `${target.id}-err`;
        target.setAttribute("aria-describedby", msg.id);
        holder.append(msg);
      } else {
        rest.push(h("li", {}, path.length ? `${path.join(" › ")}: ${e.msg}` : e.msg));
      }
    }
    general.replaceChildren(...rest);
    general.hidden = rest.length === 0;
  }

  function clearErrors() {
    for (const el of root.querySelectorAll(".builder-body [aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of root.querySelectorAll(".builder-body .field-error")) el.remove();
    general.hidden = true;
  }

  let seq = 0;
  let inflight = null;
  async function runPreview() {
    const mine = ++seq;
    inflight?.abort();
    if (!complete()) {
      clearErrors();
      count.textContent = "—";
      previewNote.textContent = "Choose an attribute for every condition to see how many profiles match.";
      sample.replaceChildren();
      return;
    }
    inflight = new AbortController();
    previewNote.textContent = "Counting…";
    try {
      const res = await post("/profile-groups/preview/", { rule_tree: tree(), sample_size: previewSample }, { signal: inflight.signal });
      if (mine !== seq) return;
      clearErrors();
      count.textContent = String(res.count);
      previewNote.textContent = `profiles match now (as of ${fmtTime(res.as_of)}).`;
      sample.replaceChildren(res.sample.length ? h("table", {},
        h("caption", {}, "Newest matching profiles"),
        h("thead", {}, h("tr", {}, h("th", {}, "Nickname"), h("th", {}, "Custom id"), h("th", {}, "Profile id"))),
        h("tbody", {}, res.sample.map((p) => h("tr", {},
          h("td", {}, p.nickname ?? "—"), h("td", {}, p.custom_id ?? "—"),
          h("td", {}, h("a", { href: `#/profiles/${p.id}` }, h("code", {}, p.id.slice(0, 8) + "…")))))))
        : "");
    } catch (e) {
      if (e.name === "AbortError" || mine !== seq) return;
      count.textContent = "—";
      sample.replaceChildren();
      if (e instanceof ApiError && e.status === 400) {
        showErrors(e.errors);
        previewNote.textContent = "Fix the highlighted fields to see the count.";
      } else if (e instanceof ApiError && e.status === 503) {
        previewNote.textContent = "The preview did not finish in time; the rule can still be saved.";
      } else previewNote.textContent = e.message;
    }
  }
  const schedulePreview = debounce(runPreview, 350);

  const applyJson = h("button", {
    type: "button",
    onclick: () => {
      try {
        const parsed = JSON.parse(jsonArea.value);
        jsonErr.hidden = true;
        const b = toBuckets(parsed);
        if (b) { buckets = b; rawTree = null; } else rawTree = parsed;
        changed({ rerender: true });
      } catch (e) {
        jsonErr.textContent = `Not valid JSON: ${e.message}`;
        jsonErr.hidden = false;
      }
    },
  }, "Use this JSON");

  root.append(
    h("div", { class: "builder-body" },
      h("p", { class: "muted" }, "A profile is in the group when it meets every bucket; it meets a bucket when any one of its conditions holds."),
      general, bucketsEl),
    h("aside", { class: "preview card", "aria-label": "Preview" },
      h("h3", {}, "Preview"), h("p", {}, count, " ", previewNote), sample),
    h("details", { class: "json-pane" },
      h("summary", {}, "The rule tree as JSON"),
      h("label", { for: jsonArea.id, class: "visually-hidden" }, "Rule tree JSON"),
      jsonArea, jsonErr, h("div", { class: "row" }, applyJson)),
  );
  render();
  jsonArea.value = JSON.stringify(tree(), null, 2);
  schedulePreview();

  return { el: root, tree, complete, showErrors, clearErrors };
}
