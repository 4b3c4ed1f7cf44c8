// Tokens: the list with its filters, create, detail (limits, leases,
// identity, audit trail), edit, enable/disable, roll and delete.

import { api, cancelled, query, Problem } from "./api.js";
import { auditSection, identityOptions } from "./identities.js";
import { factList, limitsFacts, limitsFields, limitsOf } from "./limits.js";
import {
  badge, badNumbers, clearErrors, confirmDialog, editPage, field, fromLocal, h, lines, listPage, notice,
  rendered, secretPanel, show, showErrors, tagsOf, tagsText, toLocal, when,
} from "./ui.js";

const enc = encodeURIComponent;

function state(t) {
  if (new Date(t.endDate) <= new Date()) return badge("expired", "expired");
  return t.enabled ? badge("enabled", "on") : badge("disabled", "off");
}

function uses(t) {
  return t.maxUses === undefined ? "unlimited" : `${t.remainingUses} of ${t.maxUses}`;
}

/** The identities for a select, with `current` among them whatever page it is on. */
async function identitiesWith(current) {
  const identities = await identityOptions();
  if (current && !identities.some(([id]) => id === current)) identities.push([current, current]);
  return identities;
}

export async function tokenList(params) {
  const identities = await identitiesWith(params.get("identityId"));
  const filters = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Filter tokens",
      onsubmit: (e) => {
        e.preventDefault();
        const f = e.target.elements;
        location.hash = `#/tokens${query({
          state: f.state.value === "all" ? "" : f.state.value,
          type: f.type.value.trim(),
          tag: f.tag.value.trim(),
          identityId: f.identityId.value,
        })}`;
      },
    },
    field({
      name: "state",
      label: "State",
      type: "select",
      value: params.get("state") || "all",
      options: [
        ["all", "all"],
        ["active", "active"],
        ["expired", "expired"],
      ],
    }),
    field({ name: "type", label: "Type", value: params.get("type") }),
    field({ name: "tag", label: "Tag", value: params.get("tag"), hint: "key:value" }),
    field({
      name: "identityId",
      label: "Identity",
      type: "select",
      value: params.get("identityId") || "",
      options: [["", "any"], ...identities],
    }),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Filter")),
  );
  await listPage({
    title: "Tokens",
    create: ["#/tokens/new", "New token"],
    filters,
    label: "Tokens",
    columns: [["Token"], ["Type", true], ["State"], ["Uses left"], ["Ends", true], ["Last used", true]],
    empty: "No tokens.",
    // Filters apply to each page after the query: read on until rows come.
    pagesPerLoad: 10,
    read: async (cursor) => {
      const page = await api(
        "GET",
        `/tokens${query({
          limit: 25,
          cursor,
          state: params.get("state"),
          type: params.get("type"),
          tag: params.get("tag"),
          identityId: params.get("identityId"),
        })}`,
      );
      return { items: page.body.tokens, nextCursor: page.body.nextCursor };
    },
    row: (t) =>
      h(
        "tr",
        { "data-token": t.id },
        h("td", {}, h("a", { href: `#/tokens/${enc(t.id)}` }, t.description || t.id)),
        h("td", { class: "optional" }, t.type),
        h("td", {}, state(t)),
        h("td", {}, uses(t)),
        h("td", { class: "optional" }, when(t.endDate)),
        h("td", { class: "optional" }, when(t.lastUsedAt)),
      ),
  });
}

/** Every field a token has, for create and edit. */
function tokenForm(t, mode, identities) {
  const create = mode === "create";
  return [
    field({ name: "description", label: "Description", value: t.description, wide: true }),
    create ? field({ name: "type", label: "Type", value: t.type || "api" }) : null,
    field({ name: "resource", label: "Resource", value: t.resource ?? "/", hint: "A path prefix: /teams covers /teams/1." }),
    field({ name: "write", label: "Allows writes", type: "checkbox", value: t.write }),
    field({ name: "enabled", label: "Enabled", type: "checkbox", value: t.enabled ?? true }),
    field({ name: "identityId", label: "Identity", type: "select", value: t.identityId || "", options: [["", "none"], ...identities] }),
    field({ name: "tags", label: "Tags", type: "textarea", value: tagsText(t.tags), hint: "One key=value a line." }),
    field({ name: "scopes", label: "Scopes", type: "textarea", value: (t.scopes || []).join("\n"), hint: "One scope:<service>:<privilege> a line." }),
    field({ name: "allowedAddresses", label: "Allowed addresses", type: "textarea", value: (t.allowedAddresses || []).join("\n"), hint: "IPv4 or IPv6 addresses or CIDRs, one a line." }),
    field({ name: "audiences", label: "Audiences", value: (t.audiences || []).join(", "), hint: "The APIs it is meant for, comma-separated." }),
    create ? field({ name: "bindToRequester", label: "Bind to my address", type: "checkbox" }) : null,
    field({ name: "caller", label: "Caller", value: t.caller }),
    field({ name: "callee", label: "Callee", value: t.callee }),
    field({ name: "maxConcurrent", label: "Concurrent leases (maxConcurrent)", type: "number", value: t.maxConcurrent, hint: "Empty: no cap.", attrs: { min: 1 } }),
    ...limitsFields(t),
    field({ name: "startDate", label: "Valid from", type: "datetime-local", value: toLocal(t.startDate), hint: "Your local time. Empty: now." }),
    field({ name: "endDate", label: "Valid until", type: "datetime-local", value: toLocal(t.endDate), hint: create ? "Or a lifetime below. Empty: 12 hours." : "Your local time." }),
    create ? field({ name: "ttlSeconds", label: "Lifetime in seconds (ttlSeconds)", type: "number", attrs: { min: 1 } }) : null,
    field({
      name: "onLeak",
      label: "When a scanner reports it leaked",
      type: "select",
      value: t.onLeak || "revoke",
      options: [
        ["revoke", "revoke it"],
        ["disable", "disable it"],
        ["notify", "only log it"],
      ],
    }),
  ];
}

function listOrNull(text, commas = true) {
  const l = lines(text, commas);
  return l.length ? l : null;
}

/** The form's values as the token object holds them. */
function formValues(form) {
  const f = form.elements;
  const text = (n) => f[n].value.trim();
  const num = (n) => (f[n].value.trim() === "" ? null : Number(f[n].value));
  return {
    description: text("description"),
    resource: text("resource") || "/",
    write: f.write.checked,
    enabled: f.enabled.checked,
    identityId: f.identityId.value || null,
    tags: tagsOf(f.tags.value),
    scopes: listOrNull(f.scopes.value, false),
    allowedAddresses: listOrNull(f.allowedAddresses.value),
    audiences: listOrNull(f.audiences.value),
    caller: text("caller") || null,
    callee: text("callee") || null,
    maxConcurrent: num("maxConcurrent"),
    ...limitsOf(form),
    startDate: fromLocal(f.startDate.value),
    endDate: fromLocal(f.endDate.value),
    onLeak: f.onLeak.value,
  };
}

/**
 * The token's page under a secret shown once. The secret is on the page
 * before anything else is read, so a failing read never loses it.
 */
async function underSecret(id, panel) {
  show(h("h1", {}, "Token"), panel);
  try {
    await tokenDetail(id, panel);
  } catch (e) {
    if (cancelled(e)) return;
    panel.after(notice(`${e.message} The secret above is the one to keep.`, "bad"));
  }
}

export async function tokenCreate() {
  const identities = await identitiesWith(null);
  const submit = h("button", { type: "submit" }, "Create the token");
  const form = h(
    "form",
    { class: "grid", novalidate: true, "aria-label": "New token" },
    tokenForm({}, "create", identities),
    h("div", { class: "actions wide" }, submit),
  );
  // One key per form: a double submit, or a retry after a lost answer,
  // creates one token.
  const idempotencyKey = crypto.randomUUID();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const bad = badNumbers(form);
    if (bad.length) return showErrors(form, new Problem(400, { errors: bad }));
    const body = {};
    for (const [k, v] of Object.entries(formValues(form))) {
      if (v !== null && !(k === "tags" && !Object.keys(v).length)) body[k] = v;
    }
    body.type = form.elements.type.value.trim() || "api";
    const ttl = form.elements.ttlSeconds.value.trim();
    if (ttl !== "") body.ttlSeconds = Number(ttl);
    if (form.elements.bindToRequester.checked) body.bindToRequester = true;
    submit.disabled = true;
    try {
      const created = await api("POST", "/tokens", body, { "idempotency-key": idempotencyKey });
      const t = created.body;
      history.replaceState(null, "", `#/tokens/${enc(t.id)}`);
      if (created.status === 200) {
        // A repeat: the token exists, and its secret was shown the first time.
        await tokenDetail(t.id, notice("This token was created already; its secret was shown then, once."));
        return;
      }
      await underSecret(t.id, secretPanel(t.token, "The token's secret"));
    } catch (err) {
      if (err instanceof Problem) showErrors(form, err);
      else throw err;
    } finally {
      submit.disabled = false;
    }
  });
  show(h("h1", {}, "New token"), form);
}

export async function tokenDetail(id, shownOnce) {
  let read;
  try {
    read = await api("GET", `/tokens/${enc(id)}`);
  } catch (e) {
    if (e instanceof Problem && e.status === 404) {
      show(h("h1", {}, "No such token"), notice("There is no token with this id among yours.", "bad"));
      return;
    }
    throw e;
  }
  const t = read.body;
  const etag = read.etag;
  const problem = h("div");
  const facts = [
    ["State", state(t)],
    ["Id", h("code", {}, t.id)],
    ["Starts with", h("code", {}, t.start)],
    ["Type", t.type],
    ["Resource", h("code", {}, t.resource)],
    ["Writes", t.write ? "allowed" : "read-only"],
    ...limitsFacts(t),
    [
      "Leases held",
      t.maxConcurrent === undefined ? "no cap" : h("span", { "data-fact": "activeLeases" }, `${t.activeLeases} of ${t.maxConcurrent}`),
    ],
    ["Identity", t.identityId ? h("a", { href: `#/identities/${enc(t.identityId)}` }, t.identityId) : "none"],
    ["Audiences", (t.audiences || []).join(", ") || "any API"],
    ["Scopes", (t.scopes || []).join(" ") || "none"],
    ["Allowed addresses", (t.allowedAddresses || []).join(", ") || "any"],
    ["Tags", Object.entries(t.tags || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "none"],
    ["Valid from", t.startDate ? when(t.startDate) : "creation"],
    ["Valid until", when(t.endDate)],
    ["Last used", when(t.lastUsedAt)],
    ["Created", when(t.createdAt)],
    ["Updated", when(t.updatedAt)],
    ["On a leak report", t.onLeak],
  ];
  if (t.caller) facts.push(["Caller", t.caller]);
  if (t.callee) facts.push(["Callee", t.callee]);
  if (t.previousSecretExpiresAt) {
    facts.push(["Previous secret", h("span", {}, "still valid until ", when(t.previousSecretExpiresAt))]);
  }
  // An action that re-renders the page in place marks it rendered once it is
  // whole; one that moves to another route leaves that to the router.
  const act = (label, cls, run) =>
    h("button", {
      type: "button",
      class: cls,
      onclick: () => {
        const page = location.hash;
        run()
          .catch((e) => cancelled(e) || problem.replaceChildren(notice(e.message, "bad")))
          .finally(() => location.hash === page && rendered(page));
      },
    }, label);
  const actions = h(
    "div",
    { class: "actions" },
    h("a", { class: "button quiet", href: `#/tokens/${enc(t.id)}/edit` }, "Edit"),
    act(t.enabled ? "Disable" : "Enable", "quiet", async () => {
      await api("PATCH", `/tokens/${enc(t.id)}`, { enabled: !t.enabled }, { "if-match": etag });
      await tokenDetail(t.id);
    }),
    act("Roll the secret", "quiet", async () => {
      const grace = field({
        name: "graceSeconds",
        label: "Keep the current secret valid for (seconds)",
        type: "number",
        value: 0,
        attrs: { min: 0, max: 2592000 },
      });
      const ok = await confirmDialog(
        "Roll the secret",
        "A new secret replaces the current one. Uses, limits and leases stay the token's.",
        "Roll",
        grace,
      );
      if (!ok) return;
      const graceSeconds = Number(grace.querySelector("input").value || 0);
      const rolled = await api("POST", `/tokens/${enc(t.id)}/roll`, { graceSeconds }, { "if-match": etag });
      const after = rolled.body.previousSecretExpiresAt;
      const panel = h(
        "div",
        {},
        secretPanel(rolled.body.token, "The token's new secret"),
        notice(after ? `The previous secret stays valid until ${new Date(after).toLocaleString()}.` : "The previous secret no longer validates."),
      );
      await underSecret(t.id, panel);
    }),
    act("Delete", "danger", async () => {
      const ok = await confirmDialog(
        "Delete this token?",
        `“${t.description || t.id}” will be refused from the very next validate. This cannot be undone.`,
        "Delete",
      );
      if (!ok) return;
      await api("DELETE", `/tokens/${enc(t.id)}`);
      location.hash = "#/tokens";
    }),
  );
  show(
    h("h1", {}, t.description || "Token"),
    shownOnce || null,
    problem,
    actions,
    factList(facts),
    await auditSection({ tokenId: t.id }),
  );
}

export async function tokenEdit(id) {
  const read = await api("GET", `/tokens/${enc(id)}`);
  const t = read.body;
  editPage({
    title: `Edit “${t.description || t.id}”`,
    label: "Edit the token",
    what: "token",
    path: `/tokens/${enc(id)}`,
    read,
    fields: tokenForm(t, "edit", await identitiesWith(t.identityId)),
    values: formValues,
    back: `#/tokens/${enc(id)}`,
  });
}
