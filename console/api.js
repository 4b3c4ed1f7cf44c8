// Calls to the management API, on this page's origin, with the JWT as
// Bearer. Errors come back as `Problem`s (RFC 9457), each bad field named.

import { bearer, forget, signIn } from "./auth.js";

const RETRIED = "tollgate-console-401";

export class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `The request failed (${status}).`);
    this.status = status;
    this.body = body || {};
    this.errors = (body && body.errors) || [];
    this.code = body && body.code;
  }
}

// Reads in flight belong to the page that asked: leaving it cancels them,
// so a slow answer for the page left behind never replaces the page shown.
let reads = new AbortController();

/** Called as the route changes: cancels the reads of the page left. */
export function leavePage() {
  reads.abort();
  reads = new AbortController();
}

/** Whether `e` is a read cancelled by leaving its page (nothing to show). */
export function cancelled(e) {
  return e instanceof DOMException && e.name === "AbortError";
}

export async function api(method, path, body, headers = {}) {
  const h = { accept: "application/json", authorization: `Bearer ${bearer()}`, ...headers };
  if (body !== undefined) h["content-type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    signal: method === "GET" ? reads.signal : undefined,
  });
  const text = await r.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (r.status === 401) {
    // The JWT expired: sign in again (the issuer's session answers at
    // once), but not in a loop if the API keeps refusing fresh ones.
    forget();
    const last = Number(sessionStorage.getItem(RETRIED) || 0);
    if (Date.now() - last > 60000) {
      sessionStorage.setItem(RETRIED, String(Date.now()));
      signIn();
    }
  }
  if (!r.ok) throw new Problem(r.status, json);
  return { status: r.status, etag: r.headers.get("etag"), body: json };
}

/** A query string of the non-empty entries (arrays repeat the key). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      if (one !== undefined && one !== null && one !== "") q.append(k, one);
    }
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}
