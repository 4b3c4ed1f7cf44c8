// The console's entry: sign-in first, then one view per route of the
// fragment (#/tokens, #/tokens/new, #/tokens/ID, #/tokens/ID/edit, and the
// same under #/identities). No framework and no build step.

import { cancelled, leavePage } from "./api.js";
import * as auth from "./auth.js";
import { identityCreate, identityDetail, identityEdit, identityList } from "./identities.js";
import { tokenCreate, tokenDetail, tokenEdit, tokenList } from "./tokens.js";
import { h, notice, rendered, show } from "./ui.js";

const routes = [
  [/^#\/tokens\/new$/, () => tokenCreate()],
  [/^#\/tokens\/([^/?]+)\/edit$/, (m) => tokenEdit(decodeURIComponent(m[1]))],
  [/^#\/tokens\/([^/?]+)$/, (m) => tokenDetail(decodeURIComponent(m[1]))],
  [/^#\/tokens(?:\?(.*))?$/, (m) => tokenList(new URLSearchParams(m[1] || ""))],
  [/^#\/identities\/new$/, () => identityCreate()],
  [/^#\/identities\/([^/?]+)\/edit$/, (m) => identityEdit(decodeURIComponent(m[1]))],
  [/^#\/identities\/([^/?]+)$/, (m) => identityDetail(decodeURIComponent(m[1]))],
  [/^#\/identities(?:\?(.*))?$/, (m) => identityList(new URLSearchParams(m[1] || ""))],
];

async function route() {
  leavePage();
  if (!auth.signedIn()) return signInPage();
  const hash = location.hash || "#/tokens";
  for (const [pattern, view] of routes) {
    const m = hash.match(pattern);
    if (m) {
      try {
        await view(m);
      } catch (e) {
        // Left for another page before it loaded: that page renders itself.
        if (cancelled(e)) return;
        // api.js is signing in again, unless the API refused a fresh JWT.
        if (e.status === 401) return signInPage("The API did not accept your sign-in: sign in again.");
        show(h("h1", {}, "Something went wrong"), notice(e.message, "bad"));
      }
      rendered(hash);
      return;
    }
  }
  show(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/tokens" }, "Your tokens")));
}

function signInPage(problem) {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  if (!auth.configured()) {
    show(
      h("h1", {}, "Sign-in is not configured"),
      notice("This deployment names no OIDC issuer for the console (see the deploy guide).", "bad"),
    );
  } else {
    show(
      h("h1", {}, "Tollgate console"),
      problem ? notice(problem, "bad") : null,
      h("p", {}, "Manage your API tokens and identities. Sign in with your account."),
      h("button", { type: "button", id: "sign-in", onclick: () => auth.signIn() }, "Sign in"),
    );
  }
  rendered("sign-in");
}

function signedInChrome() {
  document.getElementById("nav").hidden = false;
  const out = document.getElementById("sign-out");
  out.hidden = false;
  out.onclick = () => auth.signOut();
  document.getElementById("who").textContent = auth.subject();
}

// The skip link moves the focus without touching the fragment (the router's).
document.querySelector(".skip").addEventListener("click", (e) => {
  e.preventDefault();
  document.getElementById("main").focus();
});

async function start() {
  try {
    await auth.loadConfig();
    if (await auth.completeSignIn()) signedInChrome();
    else if (auth.configured() && auth.wasSignedIn()) return auth.signIn();
  } catch (e) {
    return signInPage(e.message);
  }
  window.addEventListener("hashchange", route);
  await route();
}

start();
