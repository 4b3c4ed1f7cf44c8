// The limits a token and an identity share: uses (maxUses, refill) and up
// to four rate limits. One form part and one view, used by both.

import { field, h, when } from "./ui.js";

const MAX_RATE_LIMITS = 4;

/** The form part; `values` is the object being edited (or {}). */
export function limitsFields(values) {
  const refill = values.refill || {};
  const limits = values.rateLimits || [];
  const rows = [];
  for (let i = 0; i < MAX_RATE_LIMITS; i++) {
    const l = limits[i] || {};
    rows.push(
      h(
        "div",
        { class: "row" },
        field({ name: `rl-name-${i}`, label: `Limit ${i + 1}: name`, value: l.name, attrs: { placeholder: "minute" } }),
        field({ name: `rl-limit-${i}`, label: "calls", type: "number", value: l.limit, attrs: { min: 1 } }),
        field({
          name: `rl-period-${i}`,
          label: "per seconds",
          type: "number",
          value: l.periodSeconds,
          attrs: { min: 1, placeholder: "60" },
        }),
      ),
    );
  }
  return [
    field({
      name: "maxUses",
      label: "Uses in all (maxUses)",
      type: "number",
      value: values.maxUses,
      hint: "Empty: unlimited.",
      attrs: { min: 1 },
    }),
    h(
      "fieldset",
      { class: "wide", "data-field": "refill" },
      h("legend", {}, "Refill"),
      h(
        "div",
        { class: "row" },
        field({ name: "refill-amount", label: "Uses at each refill", type: "number", value: refill.amount, attrs: { min: 1 } }),
        field({
          name: "refill-interval",
          label: "Every",
          type: "select",
          value: refill.interval || "",
          options: [
            ["", "no refill"],
            ["daily", "day (00:00 UTC)"],
            ["monthly", "month"],
          ],
        }),
        field({ name: "refill-day", label: "Day of the month", type: "number", value: refill.day, attrs: { min: 1, max: 31 } }),
      ),
      h("span", { class: "error" }),
    ),
    h(
      "fieldset",
      { class: "wide", "data-field": "rateLimits" },
      h("legend", {}, "Rate limits"),
      h("div", { class: "rows" }, rows),
      h("span", { class: "error", "aria-live": "polite" }),
    ),
  ];
}

function number(form, name) {
  const v = form.elements[name].value.trim();
  return v === "" ? null : Number(v);
}

/** The limits as the API takes them, read from the form. */
export function limitsOf(form) {
  const rateLimits = [];
  for (let i = 0; i < MAX_RATE_LIMITS; i++) {
    const name = form.elements[`rl-name-${i}`].value.trim();
    const limit = number(form, `rl-limit-${i}`);
    const periodSeconds = number(form, `rl-period-${i}`);
    if (name || limit !== null || periodSeconds !== null) rateLimits.push({ name, limit, periodSeconds });
  }
  const interval = form.elements["refill-interval"].value;
  let refill = null;
  if (interval) {
    refill = { amount: number(form, "refill-amount"), interval };
    const day = number(form, "refill-day");
    if (interval === "monthly" && day !== null) refill.day = day;
  }
  return { maxUses: number(form, "maxUses"), refill, rateLimits: rateLimits.length ? rateLimits : null };
}

/** Uses, refill and each rate limit's current window, as facts. */
export function limitsFacts(o) {
  const facts = [];
  if (o.maxUses !== undefined) {
    facts.push(["Uses left", h("span", { "data-fact": "remainingUses" }, `${o.remainingUses} of ${o.maxUses}`)]);
  } else {
    facts.push(["Uses", "unlimited"]);
  }
  if (o.refill) {
    const every = o.refill.interval === "monthly" ? `monthly, on day ${o.refill.day || 1}` : "daily";
    facts.push(["Refill", h("span", {}, `${o.refill.amount} uses, ${every}; next `, when(o.nextRefillAt))]);
  }
  for (const w of o.rateLimitWindows || []) {
    facts.push([
      `Rate limit “${w.name}”`,
      h("span", { "data-window": w.name }, `${w.remaining} of ${w.limit} left in this window; resets `, when(w.reset)),
    ]);
  }
  return facts;
}

export function factList(facts) {
  return h(
    "dl",
    { class: "facts" },
    facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]),
  );
}
