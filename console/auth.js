// Sign-in with the deployment's OIDC issuer: the authorization code flow
// with PKCE (RFC 7636). The JWT lives in this module's memory only: never
// in storage, never in a URL. sessionStorage holds the PKCE verifier and
// state for the one round trip to the issuer, and a flag that this tab was
// signed in, so that a reload signs in again at once (the issuer's own
// short session answers without asking).

const PENDING = "tollgate-console-pending";
const SIGNED_IN = "tollgate-console-signed-in";

let config = null;
let jwt = null;
let claims = null;

export async function loadConfig() {
  const r = await fetch("/console/config.json", { cache: "no-store" });
  if (!r.ok) throw new Error(`The console's configuration did not load (${r.status}).`);
  config = await r.json();
  return config;
}

export function configured() {
  return Boolean(config && config.authorizationEndpoint && config.tokenEndpoint && config.clientId);
}

function base64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(n) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

/** Where the issuer sends the browser back: this page, with no fragment. */
export function redirectUri() {
  return `${location.origin}/console`;
}

export async function signIn() {
  const verifier = random(48);
  const state = random(16);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, back: location.hash }));
  const url = new URL(config.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: config.clientId,
    redirect_uri: redirectUri(),
    scope: config.scope || "openid",
    state,
    code_challenge: base64url(digest),
    code_challenge_method: "S256",
  }).toString();
  // replace: Back from the console never returns to the issuer's request.
  location.replace(url.toString());
}

/**
 * The issuer's answer, when this load is one: the code exchanged for the
 * JWT. Answers whether it was; throws when the answer is refused or does
 * not match the request this tab made.
 */
export async function completeSignIn() {
  const params = new URLSearchParams(location.search);
  const code = params.get("code");
  const error = params.get("error");
  if (!code && !error) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  // The code leaves the address bar and the history at once.
  history.replaceState(null, "", `/console${(pending && pending.back) || "#/tokens"}`);
  if (error) throw new Error(`The sign-in was refused (${error}).`);
  if (!pending || pending.state !== params.get("state")) {
    throw new Error("The sign-in answer does not match this tab's request: sign in again.");
  }
  const r = await fetch(config.tokenEndpoint, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri(),
      client_id: config.clientId,
      code_verifier: pending.verifier,
    }),
  });
  if (!r.ok) throw new Error(`The issuer refused the sign-in (${r.status}): sign in again.`);
  const answer = await r.json();
  remember(answer.id_token || answer.access_token);
  return true;
}

function remember(token) {
  const payload = token.split(".")[1] || "";
  const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
  claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
  jwt = token;
  sessionStorage.setItem(SIGNED_IN, "1");
}

/** Whether this tab was signed in before this load (a reload). */
export function wasSignedIn() {
  return sessionStorage.getItem(SIGNED_IN) === "1";
}

export function signedIn() {
  return jwt !== null && claims !== null && claims.exp * 1000 > Date.now();
}

export function bearer() {
  return jwt;
}

export function subject() {
  return (claims && (claims.email || claims["cognito:username"] || claims.sub)) || "";
}

/** Drops a JWT the API no longer accepts (it expired). */
export function forget() {
  jwt = null;
  claims = null;
}

export function signOut() {
  jwt = null;
  claims = null;
  sessionStorage.removeItem(SIGNED_IN);
  if (config && config.logoutEndpoint) {
    const url = new URL(config.logoutEndpoint);
    url.search = new URLSearchParams({ client_id: config.clientId, logout_uri: redirectUri() }).toString();
    location.assign(url.toString());
  } else {
    location.assign("/console");
  }
}
