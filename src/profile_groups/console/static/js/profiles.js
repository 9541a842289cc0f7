// Profiles: find one, see its groups, its attribute values (as rules see them, labelled from
// the catalogue) and ask why it is or is not in a group.
import { ApiError, get, qs, loadCatalogue } from "./api.js";
import { h, field, fmtTime, fmtValue } from "./dom.js";
import { pagedList } from "./forms.js";
import { resolveProfile } from "./groups.js";

export async function profilesScreen(main) {
  const q = h("input", { type: "search", placeholder: "profile id or custom id", required: true });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const list = pagedList("/profiles/", (rows) => h("table", {},
    h("thead", {}, h("tr", {}, ["Nickname", "Custom id", "Profile id", "Created"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((p) => h("tr", {}, h("td", {}, p.nickname ?? "—"), h("td", {}, p.custom_id ?? "—"),
      h("td", {}, h("a", { href: `#/profiles/${p.id}` }, h("code", {}, p.id))), h("td", {}, fmtTime(p.created_at)))))),
  { empty: "No profiles yet: the platform pushes them through the API.", label: "profiles" });
  main.replaceChildren(h("h1", {}, "Profiles"),
    h("form", { class: "row", role: "search", onsubmit: async (e) => {
      e.preventDefault();
      err.hidden = true;
      try { location.hash = `#/profiles/${await resolveProfile(q.value.trim())}`; } catch (x) { err.textContent = x.message; err.hidden = false; }
    } }, field("Find a profile", q), h("button", { type: "submit" }, "Open")), err, list.el);
  q.focus();
  await list.load();
}

export async function profileScreen(main, id) {
  const [p, catalogue] = await Promise.all([get(`/profiles/${id}/`), loadCatalogue()]);
  const who = p.nickname || p.custom_id || p.id;
  const groups = pagedList(`/profiles/${id}/profile-groups/`, (rows) => h("table", {},
    h("thead", {}, h("tr", {}, ["Group", "Type", "Members", "Member since", ""].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows.map((g) => h("tr", {}, h("td", {}, h("a", { href: `#/groups/${g.group_id}` }, g.group_name)),
      h("td", {}, g.membership_type), h("td", { class: "num" }, g.profile_count), h("td", {}, fmtTime(g.membership_created_at)),
      h("td", {}, h("a", { href: `#/groups/${g.group_id}/explain/${id}` }, "Why?")))))),
  { empty: "This profile is in no group.", label: "groups" });

  const values = h("div", { class: "values" });
  try {
    const res = await get(`/profiles/${id}/attributes/`);
    const byCat = new Map();
    for (const a of catalogue) {
      if (!byCat.has(a.category)) byCat.set(a.category, []);
      byCat.get(a.category).push(a);
    }
    values.append(h("p", { class: "muted" }, `As a rule sees them now (${fmtTime(res.as_of)}); windowed attributes are shown over all time.`),
      ...[...byCat].map(([cat, attrs]) => h("details", { open: cat === "custom" || undefined },
        h("summary", {}, cat.charAt(0).toUpperCase() + cat.slice(1)),
        h("dl", {}, attrs.flatMap((a) => [h("dt", { title: a.key }, a.label), h("dd", {}, fmtValue(res.values[a.key]))])))));
  } catch (e) {
    values.append(h("p", { class: "error" }, e.message));
  }

  // Any active dynamic group (the profile may be out of it): ask why.
  const pick = h("select", {}, h("option", { value: "" }, "Choose a group…"));
  try {
    const page = await get(`/profile-groups/${qs({ page_size: 200 })}`);
    for (const g of page.results) pick.append(h("option", { value: g.id }, `${g.name} (${g.membership_type})`));
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
  }

  main.replaceChildren(
    h("h1", {}, who),
    h("p", { class: "muted" }, `Id ${p.id} · custom id ${p.custom_id ?? "—"} · created ${fmtTime(p.created_at)}`),
    h("section", { class: "card" }, h("h2", {}, "Groups"), groups.el),
    h("section", { class: "card" }, h("h2", {}, "Why is this profile in a group, or not?"),
      h("form", { class: "row", onsubmit: (e) => { e.preventDefault(); if (pick.value) location.hash = `#/groups/${pick.value}/explain/${id}`; } },
        field("Group", pick), h("button", { type: "submit" }, "Explain"))),
    h("section", { class: "card" }, h("h2", {}, "Attribute values"), values),
  );
  await groups.load();
}
