// DOM helpers: elements built with properties (never HTML strings), labelled
// fields whose errors sit beside them, dates, dialogs, the secret panel and
// the edit page tokens and identities share.

import { api, Problem } from "./api.js";

const main = () => document.getElementById("main");

/** An element: `attrs` are attributes, `on*` handlers, `value`/`checked` properties. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value" || k === "checked") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Replaces the page's content and moves focus to its heading. */
export function show(...content) {
  main().replaceChildren(...content.filter((c) => c !== null && c !== undefined && c !== false));
  const heading = main().querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

/** Marks `page` as rendered whole: what the browser tests wait for. */
export function rendered(page) {
  document.body.dataset.ready = page;
  performance.mark(`tollgate-ready ${page}`);
}

export function notice(text, kind = "") {
  return h("div", { class: `notice ${kind}`, role: kind === "bad" ? "alert" : "status" }, text);
}

let ids = 0;

/**
 * A labelled field. `name` is the API's field name: a 400 naming it (or
 * `name[i]`, `name.key`) is shown right under it.
 */
export function field({ name, label, type = "text", value, hint, options, rows, wide, attrs = {} }) {
  const id = `f${++ids}-${name.replace(/[^a-z0-9]/gi, "")}`;
  const described = [`${id}-error`, hint ? `${id}-hint` : null].filter(Boolean).join(" ");
  let input;
  if (type === "select") {
    input = h(
      "select",
      { id, name, "aria-describedby": described, ...attrs },
      options.map(([v, text]) => h("option", { value: v, selected: String(value ?? "") === v }, text)),
    );
  } else if (type === "textarea") {
    input = h("textarea", { id, name, rows: rows || 3, "aria-describedby": described, value: value ?? "", ...attrs });
  } else if (type === "checkbox") {
    input = h("input", { id, name, type, checked: Boolean(value), "aria-describedby": described, ...attrs });
    return h(
      "div",
      { class: `field check${wide ? " wide" : ""}`, "data-field": name },
      input,
      h("label", { for: id }, label),
      h("span", { class: "error", id: `${id}-error` }),
    );
  } else {
    input = h("input", { id, name, type, value: value ?? "", "aria-describedby": described, ...attrs });
  }
  return h(
    "div",
    { class: `field${wide ? " wide" : ""}`, "data-field": name },
    h("label", { for: id }, label),
    input,
    hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null,
    h("span", { class: "error", id: `${id}-error`, "aria-live": "polite" }),
  );
}

/** The field an API error names: `rateLimits[1].limit` belongs to `rateLimits`. */
function fieldOf(name) {
  return String(name || "").split(/[.[]/)[0];
}

/**
 * Number fields the browser could not read (`1e`, `-`): their value reads
 * as empty, which would clear a limit, so they are errors of their own.
 */
export function badNumbers(form) {
  return [...form.querySelectorAll('input[type="number"]')]
    .filter((i) => i.validity.badInput)
    .map((i) => ({ field: i.name, message: "must be a whole number" }));
}

/** Clears a form's errors. */
export function clearErrors(form) {
  for (const f of form.querySelectorAll(".field.invalid, fieldset.invalid")) f.classList.remove("invalid");
  for (const e of form.querySelectorAll(".error")) e.textContent = "";
  for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
  const general = form.querySelector(".form-problem");
  if (general) general.remove();
}

/** The input a nested error names: `rateLimits[1].limit` is `rl-limit-1`. */
function inputFor(form, name) {
  const short = { name: "name", limit: "limit", periodSeconds: "period" };
  let m = /^rateLimits\[(\d+)\]\.(name|limit|periodSeconds)$/.exec(name);
  if (m) return form.elements[`rl-${short[m[2]]}-${m[1]}`] || null;
  m = /^refill\.(amount|interval|day)$/.exec(name);
  if (m) return form.elements[`refill-${m[1]}`] || null;
  return null;
}

/** Shows a 400's errors beside their fields, and anything else above the form. */
export function showErrors(form, problem) {
  clearErrors(form);
  const unplaced = [];
  for (const e of problem.errors) {
    const holder = form.querySelector(`[data-field="${CSS.escape(fieldOf(e.field))}"]`);
    if (!holder) {
      unplaced.push(`${e.field}: ${e.message}`);
      continue;
    }
    holder.classList.add("invalid");
    // A nested error (`rateLimits[0].limit`) goes beside its own input, in
    // the message that input's aria-describedby names.
    const nested = inputFor(form, e.field);
    const slot = nested ? nested.closest(".field").querySelector(":scope > .error") : holder.querySelector(":scope > .error");
    slot.textContent = [slot.textContent, e.field === fieldOf(e.field) ? e.message : `${e.field}: ${e.message}`]
      .filter(Boolean)
      .join("; ");
    const input = nested || holder.querySelector("input, select, textarea");
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.closest(".field")?.classList.add("invalid");
    }
  }
  if (unplaced.length || !problem.errors.length) {
    const text = unplaced.length ? unplaced.join("; ") : problem.message;
    form.prepend(h("div", { class: "notice bad form-problem", role: "alert" }, text));
  }
  // The first field at fault, in the form's order.
  const first = form.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

/** A date as the reader's locale shows it, with the UTC instant on hover. */
export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return h("time", { datetime: iso, title: iso }, d.toLocaleString());
}

/** An RFC 3339 instant from a `datetime-local` value (the reader's zone). */
export function fromLocal(value) {
  return value ? new Date(value).toISOString() : null;
}

/** A `datetime-local` value for an RFC 3339 instant. */
export function toLocal(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Asks in a modal dialog; resolves true when confirmed. */
export function confirmDialog(title, text, action, extra) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog",
      { "aria-labelledby": "dialog-title" },
      h("h2", { id: "dialog-title" }, title),
      h("p", {}, text),
      extra || null,
      h(
        "form",
        { method: "dialog", class: "actions" },
        h("button", { value: "cancel", class: "quiet", type: "submit" }, "Cancel"),
        h("button", { value: "confirm", class: "danger", type: "submit" }, action),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "confirm");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/**
 * A secret shown once: the string, a copy button, and the warning. It
 * lives in this element only, never in storage, and goes with the page.
 */
export function secretPanel(secret, what) {
  const status = h("span", { role: "status", class: "muted" });
  const code = h("code", { id: "secret", "data-secret": "" }, secret);
  return h(
    "div",
    { class: "notice", role: "region", "aria-label": "The new secret" },
    h("p", {}, h("strong", {}, `${what}. Copy it now: you will not see this again.`)),
    h(
      "div",
      { class: "secret" },
      code,
      h(
        "button",
        {
          type: "button",
          id: "copy-secret",
          onclick: async () => {
            try {
              await navigator.clipboard.writeText(secret);
              status.textContent = "Copied.";
            } catch {
              getSelection().selectAllChildren(code);
              status.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
            }
          },
        },
        "Copy",
      ),
      status,
    ),
  );
}

/** "key=value" lines ⇄ a tags map. */
export function tagsText(tags) {
  return Object.entries(tags || {})
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");
}

export function tagsOf(text) {
  const tags = {};
  for (const line of lines(text, false)) {
    const at = line.indexOf("=");
    if (at < 0) tags[line] = "";
    else tags[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return tags;
}

/** Non-empty lines (and comma-separated entries, unless `commas` is false). */
export function lines(text, commas = true) {
  return String(text || "")
    .split(commas ? /[\n,]/ : /\n/)
    .map((s) => s.trim())
    .filter(Boolean);
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind}` }, text);
}

function same(a, b) {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null);
}

const refillShape = (r) =>
  r ? { amount: r.amount, interval: r.interval, day: r.interval === "monthly" ? r.day || 1 : null } : null;
const rateShape = (list) => (list || []).map((l) => [l.name, l.limit, l.periodSeconds]);

/**
 * A merge patch (RFC 7396) of what the form changed: only changed members
 * are sent (resending `maxUses` would start the uses over), a removed tag
 * goes as null, and a date counts as changed only when its field does.
 */
export function mergePatch(before, values, form) {
  const patch = {};
  for (const [k, value] of Object.entries(values)) {
    const was = before[k];
    let changed;
    if (k === "tags") continue;
    if (k === "startDate" || k === "endDate") changed = form.elements[k].value !== toLocal(was);
    else if (k === "refill") changed = !same(refillShape(was), refillShape(value));
    else if (k === "rateLimits") changed = !same(rateShape(was), rateShape(value));
    else if (k === "description") changed = (was || "") !== value;
    else changed = !same(was, value);
    if (changed) patch[k] = value;
  }
  if (values.tags) {
    const tags = {};
    for (const k of Object.keys(before.tags || {})) if (!Object.hasOwn(values.tags, k)) tags[k] = null;
    for (const [k, v] of Object.entries(values.tags)) if ((before.tags || {})[k] !== v) tags[k] = v;
    if (Object.keys(tags).length) patch.tags = tags;
  }
  return patch;
}

/**
 * An edit page: `fields` in a form whose submit sends a merge patch of
 * what changed (nothing, when nothing did) to `path` under `If-Match`,
 * then goes `back`. `read` is the object as read, with its ETag.
 */
export function editPage({ title, label, what, path, read, fields, values, back }) {
  const form = h(
    "form",
    { class: "grid", novalidate: true, "aria-label": label },
    fields,
    h(
      "div",
      { class: "actions wide" },
      h("button", { type: "submit" }, "Save"),
      h("a", { class: "button quiet", href: back }, "Cancel"),
    ),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearErrors(form);
    const bad = badNumbers(form);
    if (bad.length) return showErrors(form, new Problem(400, { errors: bad }));
    const patch = mergePatch(read.body, values(form), form);
    try {
      if (Object.keys(patch).length) await api("PATCH", path, patch, { "if-match": read.etag });
      location.hash = back;
    } catch (err) {
      if (err instanceof Problem && err.status === 412) {
        form.prepend(notice(`The ${what} changed since this page read it: reload to edit the current one.`, "bad"));
      } else if (err instanceof Problem) showErrors(form, err);
      else throw err;
    }
  });
  show(h("h1", {}, title), form);
}

/**
 * A list page: its heading and "New" link (`create`: [href, text]), the
 * filters form, and a table of `columns` ([text, optional on a phone]) that
 * `read(cursor)` ({ items, nextCursor }) fills a page at a time, with
 * "Show more". Where filters apply after the query, a page can come back
 * empty while more follow: each load then reads up to `pagesPerLoad` pages
 * until rows come.
 */
export async function listPage({ title, create, filters, label, columns, empty, read, row, pagesPerLoad = 1 }) {
  const body = h("tbody");
  const more = h("button", { type: "button", class: "quiet", hidden: true }, "Show more");
  const problem = h("div");
  const head = columns.map(([text, optional]) => h("th", optional ? { scope: "col", class: "optional" } : { scope: "col" }, text));
  show(
    h("h1", {}, title),
    h("div", { class: "actions" }, h("a", { class: "button", href: create[0] }, create[1])),
    filters,
    problem,
    h("div", { class: "scroll" }, h("table", { "aria-label": label }, h("thead", {}, h("tr", {}, ...head)), body)),
    more,
  );
  let cursor = null;
  const placeholder = h("tr", {}, h("td", { colspan: columns.length }, empty));
  const load = async () => {
    more.disabled = true;
    placeholder.remove();
    try {
      let added = 0;
      for (let pages = 0; pages < pagesPerLoad && added === 0; pages++) {
        const page = await read(cursor);
        for (const item of page.items) {
          added += 1;
          body.append(row(item));
        }
        cursor = page.nextCursor || null;
        if (!cursor) break;
      }
      if (!body.children.length) body.append(placeholder);
      more.hidden = !cursor;
    } catch (e) {
      if (e instanceof Problem && e.status === 400) showErrors(filters, e);
      else problem.replaceChildren(notice(e.message, "bad"));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener("click", load);
  await load();
}
