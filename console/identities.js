// Identities (the owner's customers, whose tokens share limits): list,
// create, detail with their tokens and audit trail, edit and delete. Also
// the audit table the token detail shows.

import { api, query, Problem } from "./api.js";
import { factList, limitsFacts, limitsFields, limitsOf } from "./limits.js";
import {
  badNumbers, clearErrors, confirmDialog, editPage, field, h, lines, listPage, notice, show, showErrors,
  tagsOf, tagsText, when,
} from "./ui.js";

const enc = encodeURIComponent;

/** [id, label] of the owner's identities (first 100), for selects. */
export async function identityOptions() {
  const page = await api("GET", "/identities?limit=100");
  return page.body.identities.map((i) => [i.id, i.description ? `${i.externalId} (${i.description})` : i.externalId]);
}

/** The newest audit records of a token or an identity. */
export async function auditSection(filter) {
  const page = await api("GET", `/audit${query({ ...filter, limit: 20 })}`);
  const rows = page.body.records.map((r) =>
    h(
      "tr",
      {},
      h("td", {}, when(r.at)),
      h("td", {}, h("code", {}, r.action)),
      h("td", {}, (r.actor && (r.actor.sub || r.actor.type || r.actor.owner)) || ""),
      h("td", { class: "optional" }, Object.keys(r.changes || {}).join(", ") || "—"),
    ),
  );
  return h(
    "section",
    { "aria-labelledby": "audit-title" },
    h("h2", { id: "audit-title" }, "Audit trail"),
    rows.length
      ? h(
          "div",
          { class: "scroll" },
          h(
            "table",
            {},
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", { scope: "col" }, "When"),
                h("th", { scope: "col" }, "Action"),
                h("th", { scope: "col" }, "By"),
                h("th", { scope: "col", class: "optional" }, "Fields changed"),
              ),
            ),
            h("tbody", {}, rows),
          ),
        )
      : h("p", { class: "muted" }, "No records."),
  );
}

export async function identityList(params) {
  const filters = h(
    "form",
    {
      class: "filters",
      role: "search",
      "aria-label": "Find an identity",
      onsubmit: (e) => {
        e.preventDefault();
        location.hash = `#/identities${query({ externalId: e.target.elements.externalId.value.trim() })}`;
      },
    },
    field({ name: "externalId", label: "External id", value: params.get("externalId") }),
    h("div", { class: "field" }, h("button", { type: "submit" }, "Find")),
  );
  await listPage({
    title: "Identities",
    create: ["#/identities/new", "New identity"],
    filters,
    label: "Identities",
    columns: [["External id"], ["Description", true], ["Uses left"], ["Created", true]],
    empty: "No identities.",
    read: async (cursor) => {
      const page = await api("GET", `/identities${query({ limit: 25, cursor, externalId: params.get("externalId") })}`);
      return { items: page.body.identities, nextCursor: page.body.nextCursor };
    },
    row: (i) =>
      h(
        "tr",
        { "data-identity": i.id },
        h("td", {}, h("a", { href: `#/identities/${enc(i.id)}` }, i.externalId)),
        h("td", { class: "optional" }, i.description || ""),
        h("td", {}, i.maxUses === undefined ? "unlimited" : `${i.remainingUses} of ${i.maxUses}`),
        h("td", { class: "optional" }, when(i.createdAt)),
      ),
  });
}

function identityForm(i, create) {
  return [
    create
      ? field({ name: "externalId", label: "External id", value: i.externalId, hint: "Your own name for the customer: letters, digits and ._:@-" })
      : null,
    field({ name: "description", label: "Description", value: i.description, wide: !create }),
    field({ name: "tags", label: "Tags", type: "textarea", value: tagsText(i.tags), hint: "One key=value a line." }),
    field({ name: "audiences", label: "Audiences", value: (i.audiences || []).join(", "), hint: "Comma-separated." }),
    field({
      name: "onLeak",
      label: "When a scanner reports one of its tokens leaked",
      type: "select",
      value: i.onLeak || "",
      options: [
        ["", "what each token says"],
        ["revoke", "revoke it"],
        ["disable", "disable it"],
        ["notify", "only log it"],
      ],
    }),
    ...limitsFields(i),
  ];
}

function identityValues(form) {
  const f = form.elements;
  const audiences = lines(f.audiences.value);
  return {
    description: f.description.value.trim(),
    tags: tagsOf(f.tags.value),
    audiences: audiences.length ? audiences : null,
    onLeak: f.onLeak.value || null,
    ...limitsOf(form),
  };
}

export async function identityCreate() {
  const form = h(
    "form",
    { class: "grid", novalidate: true, "aria-label": "New identity" },
    identityForm({}, true),
    h("div", { class: "actions wide" }, h("button", { type: "submit" }, "Create the identity")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const bad = badNumbers(form);
    if (bad.length) return showErrors(form, new Problem(400, { errors: bad }));
    const body = { externalId: form.elements.externalId.value.trim() };
    for (const [k, v] of Object.entries(identityValues(form))) {
      if (v !== null && v !== "" && !(k === "tags" && !Object.keys(v).length)) body[k] = v;
    }
    try {
      const created = await api("POST", "/identities", body);
      location.hash = `#/identities/${enc(created.body.id)}`;
    } catch (err) {
      if (err instanceof Problem) showErrors(form, err);
      else throw err;
    }
  });
  show(h("h1", {}, "New identity"), form);
}

export async function identityDetail(id) {
  let read;
  try {
    read = await api("GET", `/identities/${enc(id)}`);
  } catch (e) {
    if (e instanceof Problem && e.status === 404) {
      show(h("h1", {}, "No such identity"), notice("There is no identity with this id among yours.", "bad"));
      return;
    }
    throw e;
  }
  const i = read.body;
  const problem = h("div");
  // Every page: the filter applies after each page is read.
  const tokens = [];
  let cursor = null;
  do {
    const page = await api("GET", `/tokens${query({ identityId: i.id, limit: 100, cursor })}`);
    tokens.push(...page.body.tokens);
    cursor = page.body.nextCursor || null;
  } while (cursor);
  const remove = async () => {
    const ok = await confirmDialog("Delete this identity?", `“${i.externalId}” and its limits go. This cannot be undone.`, "Delete");
    if (!ok) return;
    try {
      await api("DELETE", `/identities/${enc(i.id)}`);
      location.hash = "#/identities";
    } catch (e) {
      const text = e.code === "IDENTITY_IN_USE" ? "Tokens still point at this identity: move or delete them first." : e.message;
      problem.replaceChildren(notice(text, "bad"));
    }
  };
  show(
    h("h1", {}, i.externalId),
    problem,
    h(
      "div",
      { class: "actions" },
      h("a", { class: "button quiet", href: `#/identities/${enc(i.id)}/edit` }, "Edit"),
      h("a", { class: "button quiet", href: `#/tokens/new` }, "New token"),
      h("button", { type: "button", class: "danger", onclick: remove }, "Delete"),
    ),
    factList([
      ["Id", h("code", {}, i.id)],
      ["Description", i.description || "—"],
      ...limitsFacts(i),
      ["Audiences", (i.audiences || []).join(", ") || "any API"],
      ["On a leak report", i.onLeak || "what each token says"],
      ["Tags", Object.entries(i.tags || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "none"],
      ["Created", when(i.createdAt)],
      ["Updated", when(i.updatedAt)],
    ]),
    h("h2", {}, "Its tokens"),
    tokens.length
      ? h(
          "ul",
          {},
          tokens.map((t) => h("li", {}, h("a", { href: `#/tokens/${enc(t.id)}` }, t.description || t.id))),
        )
      : h("p", { class: "muted" }, "None."),
    await auditSection({ identityId: i.id }),
  );
}

export async function identityEdit(id) {
  const read = await api("GET", `/identities/${enc(id)}`);
  const i = read.body;
  editPage({
    title: `Edit “${i.externalId}”`,
    label: "Edit the identity",
    what: "identity",
    path: `/identities/${enc(id)}`,
    read,
    fields: identityForm(i, false),
    values: identityValues,
    back: `#/identities/${enc(id)}`,
  });
}
