// Groups: the list, a group's screen (details, actions, rule, evaluations, members, size over
// time, change log), creating a group, and the explanation of one profile's membership.
import { ApiError, get, post, patch, del, qs, loadCatalogue } from "./api.js";
import { h, field, fmtTime, fmtValue, debounce, confirmDialog, flash, clearFieldErrors } from "./dom.js";
import { ruleBuilder, conditionText } from "./builder.js";
import { showFormErrors, attributesEditor, pagedList } from "./forms.js";
import { sizeChart } from "./chart.js";

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function statusText(g) {
  if (g.membership_type !== "dynamic") return "active";
  const ev = g.evaluation || {};
  if (ev.status === "failed") return `failed: ${ev.error || "evaluation failed"}`;
  if (ev.status === "succeeded") return `evaluated ${fmtTime(ev.last_evaluated_at)}`;
  return ev.status || "pending";
}

export async function groupsScreen(main) {
  const name = h("input", { type: "search", name: "name", placeholder: "part of the name" });
  const type = h("select", { name: "membership_type" },
    h("option", { value: "" }, "any"), h("option", { value: "static" }, "static"), h("option", { value: "dynamic" }, "dynamic"));
  const customId = h("input", { name: "custom_id", placeholder: "exact" });
  const attribute = h("input", { name: "attribute", placeholder: "key:value, key2" });
  const box = h("div");
  const err = h("p", { class: "error", role: "alert", hidden: true });

  async function reload() {
    err.hidden = true;
    const attrs = attribute.value.split(",").map((s) => s.trim()).filter(Boolean);
    const list = pagedList(
      `/profile-groups/${qs({ name: name.value, membership_type: type.value, custom_id: customId.value, attribute: attrs })}`,
      (groups) => h("table", { class: "groups" },
        h("thead", {}, h("tr", {}, ["Name", "Type", "Members", "Status", "Custom id", "Updated"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, groups.map((g) => h("tr", {},
          h("td", {}, h("a", { href: `#/groups/${g.id}` }, g.name)),
          h("td", {}, h("span", { class: `badge ${g.membership_type}` }, g.membership_type)),
          h("td", { class: "num" }, g.profile_count.toLocaleString("en")),
          h("td", { class: g.evaluation?.status === "failed" ? "error" : "" }, statusText(g)),
          h("td", {}, g.custom_id ?? "—"),
          h("td", {}, fmtTime(g.updated_at)))))),
      { empty: "No group matches.", label: "groups" });
    box.replaceChildren(list.el);
    try {
      await list.load();
    } catch (e) {
      err.textContent = e.message;
      err.hidden = false;
    }
  }
  const later = debounce(reload, 300);
  for (const c of [name, customId, attribute]) c.addEventListener("input", later);
  type.addEventListener("change", reload);

  main.replaceChildren(
    h("div", { class: "title-row" }, h("h1", {}, "Groups"),
      h("div", { class: "row" },
        h("a", { class: "button primary", href: "#/new/static" }, "New static group"),
        h("a", { class: "button primary", href: "#/new/dynamic" }, "New dynamic group"))),
    h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); reload(); } },
      field("Name", name), field("Type", type), field("Custom id", customId), field("Attribute", attribute)),
    h("p", { class: "muted" }, "Deactivated groups are hidden from the API and so from this list; ",
      h("code", {}, "profile-groups groups list CLIENT_ID --inactive"), " lists them."),
    err, box);
  await reload();
}

function groupForm(group, { builder, submitLabel, onSubmit }) {
  const name = h("input", { required: true, value: group?.name ?? "", maxlength: 255 });
  const description = h("textarea", { rows: 2, maxlength: 2000 }, group?.description ?? "");
  const customId = h("input", { value: group?.custom_id ?? "" });
  const attrs = attributesEditor(group?.attributes ?? []);
  const box = h("div", { class: "error", role: "alert", hidden: true });
  const form = h("form", { class: "card group-form" },
    field("Name", name, { errorKey: "name" }),
    field("Description", description, { errorKey: "description" }),
    field("Custom id (optional)", customId, { errorKey: "custom_id", hint: "Your own stable key for the group." }),
    attrs.el,
    builder ? h("section", { class: "rule" }, h("h2", {}, "Rule"), builder.el) : null,
    box,
    h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, submitLabel)));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { name: name.value, description: description.value, custom_id: customId.value || null, attributes: attrs.value() };
    try {
      clearFieldErrors(form);
      builder?.clearErrors();
      await onSubmit(body);
    } catch (e) {
      showFormErrors(form, e, box);
      if (builder && e instanceof ApiError && e.status === 400) builder.showErrors(e.errors);
    }
  });
  return form;
}

export async function newGroupScreen(main, type) {
  let builder = null;
  if (type === "dynamic") builder = ruleBuilder(await loadCatalogue(), null);
  const form = groupForm(null, {
    builder,
    submitLabel: type === "dynamic" ? "Save the dynamic group" : "Create the static group",
    onSubmit: async (body) => {
      const payload = { ...body, membership_type: type };
      if (builder) payload.rule_tree = builder.tree();
      const g = await post("/profile-groups/", payload);
      flash(`Group “${g.name}” created.`);
      location.hash = `#/groups/${g.id}`;
    },
  });
  main.replaceChildren(h("h1", {}, type === "dynamic" ? "New dynamic group" : "New static group"), form);
  form.querySelector("input").focus();
}

export async function groupScreen(main, id) {
  const g = await get(`/profile-groups/${id}/`);
  const dynamic = g.membership_type === "dynamic";
  const header = h("div", { class: "title-row" },
    h("h1", {}, g.name),
    h("div", { class: "row" },
      h("span", { class: `badge ${g.membership_type}` }, g.membership_type),
      h("span", { class: "badge count", id: "profile-count" }, `${g.profile_count.toLocaleString("en")} members`)));
  const toc = h("nav", { class: "toc", "aria-label": "On this page" },
    ["details", dynamic ? "rule" : null, dynamic ? "evaluations" : null, "members", "size", "changes", "explain", "actions"]
      .filter(Boolean).map((s) => h("a", { href: `#/groups/${id}`, onclick: (e) => { e.preventDefault(); document.getElementById(`sec-${s}`).scrollIntoView(); document.getElementById(`sec-${s}`).focus(); } }, s)));

  const sections = [];
  const section = (key, title, ...content) => {
    const s = h("section", { id: `sec-${key}`, class: "card", tabindex: "-1", "aria-labelledby": `h-${key}` }, h("h2", { id: `h-${key}` }, title), ...content);
    sections.push(s);
    return s;
  };

  section("details", "Details",
    h("p", { class: "muted" }, `Id ${g.id} · created ${fmtTime(g.created_at)} · updated ${fmtTime(g.updated_at)}`),
    groupForm(g, {
      submitLabel: "Save details",
      onSubmit: async (body) => {
        await patch(`/profile-groups/${id}/`, body);
        flash("Details saved.");
        await groupScreen(main, id);
      },
    }));

  let members;
  if (dynamic) {
    const evalBox = h("div", { id: "evaluation-state", "aria-live": "polite" });
    const builder = ruleBuilder(await loadCatalogue(), g.ruleset?.rule_tree);
    const ruleErr = h("div", { class: "error", role: "alert", hidden: true });
    section("rule", "Rule", evalBox, builder.el, ruleErr,
      h("div", { class: "row" }, h("button", {
        type: "button", class: "primary", onclick: async () => {
          ruleErr.hidden = true;
          try {
            await patch(`/profile-groups/${id}/`, { rule_tree: builder.tree() });
            flash("Rule saved: the group is being evaluated.");
            await refresh();
          } catch (e) {
            if (e instanceof ApiError && e.status === 400) builder.showErrors(e.errors);
            else { ruleErr.textContent = e.message; ruleErr.hidden = false; }
          }
        },
      }, "Save rule")));
    const evals = pagedList(`/profile-groups/${id}/evaluations/`, (rows) => h("table", {},
      h("thead", {}, h("tr", {}, ["Requested by", "Status", "As of", "Duration", "Matched", "Added", "Removed", "Error"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((r) => h("tr", {},
        h("td", {}, r.trigger), h("td", { class: r.status === "failed" ? "error" : "" }, r.status), h("td", {}, fmtTime(r.as_of)),
        h("td", { class: "num" }, r.duration_ms == null ? "—" : `${r.duration_ms} ms`),
        h("td", { class: "num" }, fmtValue(r.matched_count)), h("td", { class: "num" }, fmtValue(r.added_count)),
        h("td", { class: "num" }, fmtValue(r.removed_count)), h("td", {}, r.error ?? ""))))),
    { empty: "No evaluation yet.", label: "evaluations" });
    section("evaluations", "Evaluations",
      h("div", { class: "row" }, h("button", {
        type: "button", onclick: async () => {
          try {
            await post(`/profile-groups/${id}/evaluate/`, {});
            flash("Evaluation queued.");
            await refresh();
          } catch (e) { flash(e.message, "error"); }
        },
      }, "Evaluate now")),
      evals.el);

    // While an evaluation is queued or running the screen follows it, so the result (status,
    // counts, members) shows without a reload.
    let timer = null;
    async function refresh() {
      clearTimeout(timer);
      const cur = await get(`/profile-groups/${id}/`);
      const ev = cur.evaluation || {};
      evalBox.replaceChildren(h("p", { class: ev.status === "failed" ? "error" : "" },
        h("strong", {}, `Evaluation: ${ev.status ?? "—"}`),
        ` · last evaluated ${fmtTime(ev.last_evaluated_at)} · next ${fmtTime(ev.next_evaluation_at)}`,
        ev.error ? ` · ${ev.error}` : ""));
      document.getElementById("profile-count").textContent = `${cur.profile_count.toLocaleString("en")} members`;
      await Promise.all([evals.load(), members.load()]);
      if ((ev.status === "pending" || ev.status === "running") && document.body.contains(evalBox)) {
        timer = setTimeout(() => refresh().catch(() => {}), 1500);
      }
    }
    members = memberSection(id, g, section);
    sections.refresh = refresh;
  } else {
    members = memberSection(id, g, section);
  }

  // Size over time and the change log.
  const interval = h("select", {}, h("option", { value: "day" }, "by day (30 days)"), h("option", { value: "hour" }, "by hour (48 hours)"));
  const chartBox = h("div", { class: "chart" });
  async function loadSize() {
    const hours = interval.value === "day" ? 30 * 24 : 48;
    const since = new Date(Date.now() - hours * 3600e3).toISOString();
    try {
      const res = await get(`/profile-groups/${id}/size-history/${qs({ interval: interval.value, since })}`);
      chartBox.replaceChildren(sizeChart(res.results, interval.value));
    } catch (e) {
      chartBox.replaceChildren(h("p", { class: "error" }, e.message));
    }
  }
  interval.addEventListener("change", loadSize);
  section("size", "Size over time", field("Interval", interval), chartBox);

  const changeFilter = h("select", {}, h("option", { value: "" }, "entered and exited"), h("option", { value: "entered" }, "entered"), h("option", { value: "exited" }, "exited"));
  const changesBox = h("div");
  async function loadChanges() {
    const list = pagedList(`/profile-groups/${id}/changes/${qs({ change: changeFilter.value })}`, (rows) => h("table", {},
      h("thead", {}, h("tr", {}, ["When", "Change", "Profile", "Custom id", "Reason"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, rows.map((c) => h("tr", {},
        h("td", {}, fmtTime(c.occurred_at)), h("td", {}, h("span", { class: `badge ${c.change}` }, c.change)),
        h("td", {}, h("a", { href: `#/profiles/${c.profile_id}` }, h("code", {}, String(c.profile_id).slice(0, 8) + "…"))),
        h("td", {}, c.custom_id ?? "—"), h("td", {}, c.reason))))),
    { empty: "No membership change recorded.", label: "changes (oldest first)" });
    changesBox.replaceChildren(list.el);
    try {
      await list.load();
    } catch (e) {
      changesBox.replaceChildren(h("p", { class: "error" }, e.message));
    }
  }
  changeFilter.addEventListener("change", loadChanges);
  section("changes", "Change log", field("Show", changeFilter), changesBox);

  const who = h("input", { placeholder: "profile id or custom id", required: true });
  const whoErr = h("p", { class: "error", role: "alert", hidden: true });
  section("explain", "Why is a profile in this group (or not)?",
    h("form", { class: "row", onsubmit: async (e) => {
      e.preventDefault();
      whoErr.hidden = true;
      try {
        const pid = await resolveProfile(who.value.trim());
        location.hash = `#/groups/${id}/explain/${pid}`;
      } catch (err) { whoErr.textContent = err.message; whoErr.hidden = false; }
    } }, field("Profile", who), h("button", { type: "submit" }, "Explain")), whoErr);

  section("actions", "Deactivate or delete",
    h("p", {}, "A deactivated group disappears from the API (its memberships are kept; a dynamic one is no longer evaluated); ",
      h("code", {}, `profile-groups groups activate ${g.id}`), " brings it back. Deleting removes the group and its memberships for good."),
    h("div", { class: "row" },
      h("button", { type: "button", onclick: async () => {
        if (!(await confirmDialog(`Deactivate “${g.name}”?`, "It will no longer be visible through the API or in this console.", "Deactivate"))) return;
        try {
          await patch(`/profile-groups/${id}/`, { is_active: false });
          flash(`“${g.name}” deactivated.`);
          location.hash = "#/groups";
        } catch (e) { flash(e.message, "error"); }
      } }, "Deactivate"),
      h("button", { type: "button", class: "danger", onclick: async () => {
        if (!(await confirmDialog(`Delete “${g.name}”?`, `The group and its ${g.profile_count} memberships are removed. This cannot be undone.`, "Delete"))) return;
        try {
          await del(`/profile-groups/${id}/`);
          flash(`“${g.name}” deleted.`);
          location.hash = "#/groups";
        } catch (e) { flash(e.message, "error"); }
      } }, "Delete")));

  main.replaceChildren(header, toc, ...sections);
  await Promise.all([sections.refresh ? sections.refresh() : members.load(), loadSize(), loadChanges()]);
}

export async function resolveProfile(text) {
  if (!text) throw new Error("Enter a profile id or a custom id.");
  if (UUID_RE.test(text)) {
    try {
      return (await get(`/profiles/${text.toLowerCase()}/`)).id;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
  }
  try {
    return (await get(`/profile-by-custom-id/${encodeURIComponent(text)}/`)).id;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) throw new Error(`No profile has the id or custom id “${text}”.`);
    throw e;
  }
}

// Ids from pasted text or a CSV: the first column of each line; a header row naming the column
// (profile_id, custom_id, id) is skipped and picks the kind.
export function parseIds(text) {
  const ids = [];
  let kind = null;
  text.split(/\r?\n/).forEach((line, i) => {
    let cell = line.split(/[,;\t]/)[0].trim().replace(/^"(.*)"$/, "$1").trim();
    if (!cell) return;
    if (i === 0 && /^(profile_id|profile id|custom_id|custom id|id)$/i.test(cell)) {
      kind = /custom/i.test(cell) ? "custom_ids" : "profile_ids";
      return;
    }
    ids.push(cell);
  });
  return { ids, kind };
}

const MAX_IDS = 10000;

function memberSection(id, g, section) {
  const isStatic = g.membership_type === "static";
  const selected = new Set();
  const removeBtn = h("button", { type: "button", class: "danger", disabled: true }, "Remove selected");
  const list = pagedList(`/profile-groups/${id}/members/`, (rows) => h("table", { class: "members" },
    h("thead", {}, h("tr", {}, isStatic ? h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Select")) : null,
      ["Nickname", "Custom id", "Profile id", "Member since", ""].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((m) => h("tr", {},
      isStatic ? h("td", {}, h("input", { type: "checkbox", "aria-label": `Select ${m.nickname || m.custom_id || m.id}`, checked: selected.has(m.id), onchange: (e) => {
        if (e.target.checked) selected.add(m.id); else selected.delete(m.id);
        removeBtn.disabled = selected.size === 0;
      } })) : null,
      h("td", {}, m.nickname ?? "—"), h("td", {}, m.custom_id ?? "—"),
      h("td", {}, h("a", { href: `#/profiles/${m.id}` }, h("code", {}, m.id))),
      h("td", {}, fmtTime(m.membership_created_at)),
      h("td", {}, h("a", { href: `#/groups/${id}/explain/${m.id}` }, "Why?")))))),
  { empty: "No members yet.", label: "members" });

  if (!isStatic) {
    section("members", "Members", h("p", { class: "muted" }, "The rule decides who is in this group; the list follows each evaluation and every change of a profile's data."), list.el);
    return list;
  }

  const text = h("textarea", { rows: 5, placeholder: "one id per line, or a CSV whose first column holds the ids" });
  const file = h("input", { type: "file", accept: ".csv,.txt,text/csv,text/plain" });
  const kindProfile = h("input", { type: "radio", name: "kind", value: "profile_ids", id: "kind-profile" });
  const kindCustom = h("input", { type: "radio", name: "kind", value: "custom_ids", id: "kind-custom", checked: true });
  const report = h("div", { class: "report", "aria-live": "polite" });
  const formErr = h("p", { class: "error", role: "alert", hidden: true });
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    const content = await f.text();
    text.value = content;
    const { kind } = parseIds(content);
    if (kind === "profile_ids") kindProfile.checked = true;
    if (kind === "custom_ids") kindCustom.checked = true;
  });
  const kind = () => (kindProfile.checked ? "profile_ids" : "custom_ids");

  async function send(method) {
    formErr.hidden = true;
    const { ids } = parseIds(text.value);
    if (!ids.length) { formErr.textContent = "Paste or upload at least one id."; formErr.hidden = false; return; }
    const total = { successfully_added: [], already_added: [], invalid_ids: [] };
    try {
      // The API takes up to 10,000 ids per request (each request atomic): a longer file is sent in parts.
      for (let i = 0; i < ids.length; i += MAX_IDS) {
        const res = await (method === "add" ? post : del)(`/profile-groups/${id}/members/`, { [kind()]: ids.slice(i, i + MAX_IDS) });
        if (res) for (const k of Object.keys(total)) total[k].push(...(res[k] || []));
      }
    } catch (e) {
      formErr.textContent = e.message; formErr.hidden = false;
    }
    if (method === "add") {
      const part = (k, title) => h("details", { open: total[k].length > 0 && total[k].length <= 50, class: `report-${k}` },
        h("summary", {}, `${title}: ${total[k].length}`), h("ul", { class: "ids" }, total[k].map((x) => h("li", {}, h("code", {}, x)))));
      report.replaceChildren(h("h3", {}, "Report"),
        part("successfully_added", "Added"), part("already_added", "Already members"), part("invalid_ids", "Not found or malformed"));
    } else report.replaceChildren(h("p", {}, `Removed the ids that were members (${ids.length} sent).`));
    await refreshCount();
    await list.load();
  }
  async function refreshCount() {
    const cur = await get(`/profile-groups/${id}/`);
    document.getElementById("profile-count").textContent = `${cur.profile_count.toLocaleString("en")} members`;
  }
  removeBtn.addEventListener("click", async () => {
    if (!(await confirmDialog("Remove the selected members?", `${selected.size} profile(s) leave “${g.name}”.`, "Remove"))) return;
    try {
      await del(`/profile-groups/${id}/members/`, { profile_ids: [...selected] });
      selected.clear();
      removeBtn.disabled = true;
      await refreshCount();
      await list.load();
    } catch (e) { flash(e.message, "error"); }
  });

  section("members", "Members",
    h("form", { class: "add-members", onsubmit: (e) => { e.preventDefault(); send("add"); } },
      field("Ids to add or remove", text),
      field("…or upload a CSV", file),
      h("fieldset", { class: "inline" }, h("legend", {}, "The ids are"),
        h("label", { for: "kind-custom" }, kindCustom, " custom ids"), h("label", { for: "kind-profile" }, kindProfile, " profile ids")),
      formErr,
      h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Add members"),
        h("button", { type: "button", onclick: () => send("remove") }, "Remove these ids"))),
    report,
    h("div", { class: "row" }, removeBtn),
    list.el);
  return list;
}

function renderNode(node) {
  if (!node || typeof node !== "object") return h("span", {}, fmtValue(node));
  const mark = (ok) => h("span", { class: `mark ${ok ? "yes" : "no"}`, "aria-label": ok ? "holds" : "does not hold" }, ok ? "✓" : "✗");
  if (Array.isArray(node.children)) {
    return h("div", { class: `node ${node.result ? "yes" : "no"}` },
      h("p", {}, mark(node.result), " ", h("strong", {}, node.operator === "AND" ? "All of" : "Any of")),
      h("ul", {}, node.children.map((c) => h("li", {}, renderNode(c)))));
  }
  const label = explainLabels.get(node.attribute) || node.attribute;
  return h("p", { class: `leaf-explained ${node.result ? "yes" : "no"}` }, mark(node.result), " ",
    h("strong", {}, label), ` ${conditionWithValue(node.condition, node.value)}`,
    node.window_days ? ` (in the last ${node.window_days} days)` : "",
    h("span", { class: "actual" }, ` — this profile: ${fmtValue(node.actual)}`));
}
let explainLabels = new Map();

function conditionWithValue(condition, value) {
  const text = conditionText(condition);
  return text.includes("…") ? text.replace("…", fmtValue(value)) : `${text} ${fmtValue(value)}`;
}

export async function explainScreen(main, gid, pid) {
  const [g, p, catalogue] = await Promise.all([get(`/profile-groups/${gid}/`), get(`/profiles/${pid}/`), loadCatalogue()]);
  explainLabels = new Map(catalogue.map((a) => [a.key, a.label]));
  const who = p.nickname || p.custom_id || p.id;
  const head = [h("h1", {}, `Why is ${who} in “${g.name}” or not?`),
    h("p", {}, h("a", { href: `#/groups/${gid}` }, `‹ ${g.name}`), " · ", h("a", { href: `#/profiles/${pid}` }, `profile ${who}`))];
  let ex;
  try {
    ex = await get(`/profile-groups/${gid}/explain/${pid}/`);
  } catch (e) {
    main.replaceChildren(...head, h("p", { class: "error" }, e.message));
    return;
  }
  const verdict = ex.member ? `${who} is a member` : `${who} is not a member`;
  const body = [h("p", { class: `verdict ${ex.member ? "yes" : "no"}`, id: "verdict" }, verdict,
    ex.membership_created_at ? ` (since ${fmtTime(ex.membership_created_at)})` : "", ".")];
  if (g.membership_type === "dynamic" && ex.tree) {
    body.push(h("p", {}, ex.matches ? "The rule holds for this profile now" : "The rule does not hold for this profile now",
      ` (as of ${fmtTime(ex.as_of)})`,
      ex.matches !== ex.member ? "; membership follows within seconds." : "."), h("div", { class: "explain-tree card" }, renderNode(ex.tree)));
  } else body.push(h("p", { class: "muted" }, "This is a static group: members are added and removed by hand or through the API."));
  main.replaceChildren(...head, ...body);
}
