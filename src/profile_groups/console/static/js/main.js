// The console's entry: sign-in (form, or the link `run` prints: #client_id=…&token=…) and a
// hash router over the screens. See docs/console.md.
import { ApiError, get, session, signIn, signOut } from "./api.js";
import { h, field, flash } from "./dom.js";
import { groupsScreen, groupScreen, newGroupScreen, explainScreen } from "./groups.js";
import { profilesScreen, profileScreen } from "./profiles.js";
import { webhooksScreen, webhookScreen } from "./webhooks.js";

const main = document.getElementById("main");

// A sign-in link carries the credentials in the fragment, which browsers never send to the
// server; they move to session storage and the fragment is removed from the address bar (and
// so from the history) before anything else runs.
function takeLinkCredentials() {
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.has("token") && frag.has("client_id")) {
    signIn(frag.get("client_id"), frag.get("token"));
    history.replaceState(null, "", location.pathname + "#/groups");
  }
}

const routes = [
  [/^#\/groups\/?$/, () => groupsScreen(main)],
  [/^#\/new\/(static|dynamic)$/, (m) => newGroupScreen(main, m[1])],
  [/^#\/groups\/([^/]+)\/explain\/([^/]+)$/, (m) => explainScreen(main, m[1], m[2])],
  [/^#\/groups\/([^/]+)$/, (m) => groupScreen(main, m[1])],
  [/^#\/profiles\/?$/, () => profilesScreen(main)],
  [/^#\/profiles\/([^/]+)$/, (m) => profileScreen(main, m[1])],
  [/^#\/webhooks\/?$/, () => webhooksScreen(main)],
  [/^#\/webhooks\/([^/]+)$/, (m) => webhookScreen(main, m[1])],
];

async function route() {
  const s = session();
  document.getElementById("nav").hidden = !s;
  if (!s) return signInScreen();
  document.getElementById("who").textContent = `Application ${s.clientId.slice(0, 8)}…`;
  const hash = location.hash || "#/groups";
  for (const link of document.querySelectorAll("#nav a")) {
    if (hash.startsWith(link.getAttribute("href"))) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  for (const [re, screen] of routes) {
    const m = hash.match(re);
    if (m) {
      main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
      try {
        await screen(m);
      } catch (e) {
        showError(e);
      }
      return;
    }
  }
  location.hash = "#/groups";
}

export function showError(e) {
  if (e instanceof ApiError && e.status === 401) {
    signOut();
    flash("The token was refused: sign in again.", "error");
    return route();
  }
  main.replaceChildren(
    h("h1", {}, "Something went wrong"),
    h("p", { class: "error" }, e instanceof ApiError ? `${e.message} (${e.status || "network"})` : String(e)),
    h("p", {}, h("a", { href: "#/groups" }, "Back to the groups")),
  );
}

function signInScreen() {
  const clientId = h("input", { name: "client_id", required: true, autocomplete: "username" });
  const token = h("input", { name: "token", type: "password", required: true, autocomplete: "current-password" });
  const err = h("p", { class: "error", role: "alert", hidden: true });
  const form = h(
    "form",
    {
      class: "card narrow",
      onsubmit: async (ev) => {
        ev.preventDefault();
        err.hidden = true;
        signIn(clientId.value.trim(), token.value.trim());
        try {
          await get("/profile-group-attributes/?page_size=1");
        } catch (e) {
          signOut();
          err.textContent = e instanceof ApiError && e.status === 403
            ? "This token belongs to another application."
            : e.message;
          err.hidden = false;
          return;
        }
        location.hash = "#/groups";
        route();
      },
    },
    h("h1", {}, "Sign in"),
    h("p", {}, "Use a producer token of your application (", h("code", {}, "profile-groups run"),
      " prints a link that signs in directly; ", h("code", {}, "profile-groups tokens create CLIENT_ID"),
      " makes another). It is kept in this tab only."),
    field("Client id", clientId),
    field("Producer token", token),
    err,
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  main.replaceChildren(form);
  clientId.focus();
}

document.getElementById("signout").addEventListener("click", () => {
  signOut();
  location.hash = "";
  route();
});

takeLinkCredentials();
window.addEventListener("hashchange", () => {
  takeLinkCredentials();
  route();
});
route();
