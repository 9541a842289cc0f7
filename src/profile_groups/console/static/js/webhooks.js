// Webhooks: subscriptions (create, edit, rotate the secret, send a test, delete) and their
// deliveries (retry).
import { ApiError, get, post, patch, del } from "./api.js";
import { h, field, fmtTime, confirmDialog, flash } from "./dom.js";
import { pagedList, showFormErrors } from "./forms.js";

// The event types of the webhook contract (docs/console.md); webhook.test is sent by "Send test".
const EVENTS = [
  ["group.members_changed", "members entered or left a group"],
  ["group.evaluation_failed", "an evaluation failed"],
  ["group.deleted", "a group was deleted"],
];

function eventBoxes(selected = EVENTS.map((e) => e[0])) {
  const boxes = EVENTS.map(([key, text]) => {
    const cb = h("input", { type: "checkbox", value: key, id: `ev-${key}`, checked: selected.includes(key) });
    return h("label", { for: cb.id }, cb, ` ${key} `, h("small", { class: "muted" }, `(${text})`));
  });
  const el = h("fieldset", { class: "inline", dataset: { loc: "events" } }, h("legend", {}, "Events"), ...boxes);
  return { el, value: () => [...el.querySelectorAll("input:checked")].map((c) => c.value) };
}

function secretNotice(secret) {
  return h("div", { class: "notice", role: "status" },
    h("p", {}, "The signing secret, shown only now: keep it where your receiver verifies signatures."),
    h("p", {}, h("code", { class: "secret" }, secret)));
}

export async function webhooksScreen(main) {
  const list = pagedList("/webhooks/", (rows) => h("table", {},
    h("thead", {}, h("tr", {}, ["URL", "Events", "Groups", "Active", "Created"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((w) => h("tr", {},
      h("td", {}, h("a", { href: `#/webhooks/${w.id}` }, w.url)), h("td", {}, w.events.join(", ")),
      h("td", {}, w.group_ids ? `${w.group_ids.length} group(s)` : "all"),
      h("td", { class: w.is_active ? "" : "error" }, w.is_active ? "yes" : `no${w.disabled_reason ? `: ${w.disabled_reason}` : ""}`),
      h("td", {}, fmtTime(w.created_at)))))),
  { empty: "No webhook yet.", label: "webhooks" });
  await list.load();
  const url = h("input", { type: "url", required: true, placeholder: "https://example.com/hooks/profile-groups" });
  const groups = h("input", { placeholder: "empty: every group" });
  const description = h("input", {});
  const events = eventBoxes();
  const box = h("div", { class: "error", role: "alert", hidden: true });
  const result = h("div");
  const form = h("form", { class: "card" }, h("h2", {}, "New webhook"),
    field("URL", url, { errorKey: "url" }), events.el,
    field("Only these group ids (comma-separated)", groups, { errorKey: "group_ids" }),
    field("Description", description, { errorKey: "description" }), box,
    h("button", { type: "submit", class: "primary" }, "Create webhook"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const ids = groups.value.split(",").map((s) => s.trim()).filter(Boolean);
    try {
      const w = await post("/webhooks/", { url: url.value, events: events.value(), group_ids: ids.length ? ids : null, description: description.value });
      result.replaceChildren(secretNotice(w.secret), h("p", {}, h("a", { href: `#/webhooks/${w.id}` }, "Open the webhook")));
      form.reset();
      await list.load();
    } catch (x) { showFormErrors(form, x, box); }
  });
  main.replaceChildren(h("h1", {}, "Webhooks"), list.el, result, form);
}

export async function webhookScreen(main, id) {
  let w;
  try {
    w = await get(`/webhooks/${id}/`);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.replaceChildren(h("h1", {}, "Webhook"), h("p", {}, "Not found."));
      return;
    }
    throw e;
  }
  const url = h("input", { type: "url", required: true, value: w.url });
  const description = h("input", { value: w.description ?? "" });
  const active = h("input", { type: "checkbox", checked: w.is_active, id: "wh-active" });
  const events = eventBoxes(w.events);
  const box = h("div", { class: "error", role: "alert", hidden: true });
  const secret = h("div");
  const form = h("form", { class: "card" }, h("h2", {}, "Settings"),
    field("URL", url, { errorKey: "url" }), events.el, field("Description", description, { errorKey: "description" }),
    h("label", { for: "wh-active" }, active, " active"),
    w.disabled_reason ? h("p", { class: "error" }, `Disabled: ${w.disabled_reason}`) : null,
    box, h("button", { type: "submit", class: "primary" }, "Save"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await patch(`/webhooks/${id}/`, { url: url.value, events: events.value(), description: description.value, is_active: active.checked });
      flash("Webhook saved.");
    } catch (x) { showFormErrors(form, x, box); }
  });
  const deliveries = pagedList(`/webhooks/${id}/deliveries/`, (rows) => h("table", {},
    h("thead", {}, h("tr", {}, ["Created", "Type", "Status", "Attempts", "Last answer", "Next attempt", ""].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((d) => h("tr", {},
      h("td", {}, fmtTime(d.created_at)), h("td", {}, d.type), h("td", { class: d.status === "failed" ? "error" : "" }, d.status),
      h("td", { class: "num" }, d.attempts), h("td", {}, d.last_status_code ?? d.last_error ?? "—"), h("td", {}, fmtTime(d.next_attempt_at)),
      h("td", {}, d.status === "succeeded" ? "" : h("button", { type: "button", onclick: async () => {
        try { await post(`/webhooks/${id}/deliveries/${d.id}/retry/`, {}); flash("Retry queued."); await deliveries.load(); } catch (x) { flash(x.message, "error"); }
      } }, "Retry")))))),
  { empty: "No delivery yet.", label: "deliveries" });

  main.replaceChildren(h("h1", {}, w.url), h("p", {}, h("a", { href: "#/webhooks" }, "‹ Webhooks")), form, secret,
    h("section", { class: "card" }, h("h2", {}, "Actions"), h("div", { class: "row" },
      h("button", { type: "button", onclick: async () => {
        try { await post(`/webhooks/${id}/test/`, {}); flash("Test delivery queued."); await deliveries.load(); } catch (x) { flash(x.message, "error"); }
      } }, "Send a test"),
      h("button", { type: "button", onclick: async () => {
        if (!(await confirmDialog("Rotate the secret?", "The old secret stops working at once.", "Rotate"))) return;
        try { secret.replaceChildren(secretNotice((await post(`/webhooks/${id}/rotate-secret/`, {})).secret)); } catch (x) { flash(x.message, "error"); }
      } }, "Rotate secret"),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!(await confirmDialog("Delete this webhook?", "No more deliveries are sent to it.", "Delete"))) return;
        try { await del(`/webhooks/${id}/`); flash("Webhook deleted."); location.hash = "#/webhooks"; } catch (x) { flash(x.message, "error"); }
      } }, "Delete"))),
    h("section", { class: "card" }, h("h2", {}, "Deliveries"), deliveries.el));
  try {
    await deliveries.load();
  } catch (e) {
    deliveries.el.replaceChildren(h("p", { class: "error" }, e.message));
  }
}
