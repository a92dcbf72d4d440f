// One customer: current tags, why it holds them (GET /customers/<id>/explain, when the engine has
// it), its history as a timeline and a list, facts and owner.

import { api, problem } from "./api.js";
import { show, timeline } from "./charts.js";
import { byId, fill, h, when } from "./dom.js";
import { t } from "./i18n.js";
import { dimensionLabel, dimensions, tagLabel } from "./store.js";

// What a person folded or unfolded in the explanation, so the next redraw keeps it that way.
const unfolded = new Map();
let shown = null; // the customer whose choices those are

export function setUp(open) {
  byId("customer-id").value = "";
  byId("customer-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = byId("customer-id").value.trim();
    if (id) open(id);
  });
}

export async function render(id, lang) {
  const body = byId("customer-body");
  if (!id) {
    body.hidden = true;
    fill(byId("customer-message"), t("customer.prompt"));
    return;
  }
  const [customer, history, explanation] = await Promise.all([api.customer(id), api.history(id), api.explain(id, lang)]);
  if (customer.status === 404) {
    body.hidden = true;
    fill(byId("customer-message"), t("customer.unknown", { id }));
    return;
  }
  if (!customer.ok) throw new Error(problem(customer));
  if (shown !== id) unfolded.clear();
  shown = id;
  if (!history.ok) throw new Error(problem(history));
  fill(byId("customer-message"));
  body.hidden = false;
  renderSummary(customer.body);
  renderTags(customer.body.tags || {});
  renderFacts(customer.body.facts || {});
  renderHistory(history.body);
  renderExplanation(explanation);
}

function renderSummary(doc) {
  const item = (key, value) => h("div", { className: "fact" }, h("dt", {}, t(key)), h("dd", {}, value ?? "—"));
  fill(byId("customer-summary"),
    h("h2", { "data-testid": "customer-title" }, doc.customer_id),
    h("dl", { className: "facts-inline" },
      item("customer.owner", doc.owner_rep),
      item("customer.next_deadline", when(doc.next_deadline)),
      item("customer.seq", doc.seq),
      item("customer.catalog", doc.catalog_version)));
}

function renderTags(tags) {
  const order = dimensions().map((d) => d.name);
  const rows = Object.entries(tags).sort((a, b) => order.indexOf(a[1].dimension) - order.indexOf(b[1].dimension));
  fill(byId("customer-tags"), rows.length ? h("table", { className: "grid-table" },
    h("thead", {}, h("tr", {}, ["customer.dimension", "customer.tag", "customer.since", "customer.rule"]
      .map((key) => h("th", {}, t(key))))),
    h("tbody", {}, rows.map(([tag, held]) => h("tr", { "data-testid": `held-${tag}` },
      h("td", {}, dimensionLabel(held.dimension)),
      h("td", {}, h("span", { className: "tag" }, tagLabel(tag))),
      h("td", {}, when(held.since)),
      h("td", {}, h("code", {}, held.rule_id))))))
    : h("p", { className: "note" }, t("customer.no_tags")));
}

function renderFacts(facts) {
  fill(byId("customer-facts"), h("table", { className: "grid-table facts" }, h("tbody", {},
    Object.entries(facts).map(([name, value]) =>
      h("tr", {}, h("td", {}, h("code", {}, name)), h("td", {}, format(value)))))));
}

function format(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "object") return JSON.stringify(value);
  if (typeof value === "number" && !Number.isInteger(value)) return value.toFixed(2); // days, money
  return String(value);
}

function renderHistory(doc) {
  const intervals = doc.intervals || [];
  const element = byId("customer-history");
  if (!intervals.length) {
    show("chart-timeline", {});
    fill(element, h("p", { className: "note" }, t("customer.no_history")));
    return;
  }
  // Rows in catalog order, so a dimension's tags sit together on the timeline.
  const order = dimensions().flatMap((d) => d.tags.map((tag) => tag.tag));
  const rank = (tag) => (order.includes(tag) ? order.indexOf(tag) : order.length);
  const tags = [...new Set(intervals.map((i) => i.tag))].sort((a, b) => rank(a) - rank(b));
  const spans = intervals.map((i) => ({
    row: tags.indexOf(i.tag),
    start: Date.parse(i.entered_at),
    end: i.left_at ? Date.parse(i.left_at) : null,
    dimension: i.dimension,
  }));
  byId("chart-timeline").style.height = `${60 + 28 * tags.length}px`;
  show("chart-timeline", timeline(tags.map(tagLabel), spans, Date.now()));
  fill(element,
    h("ol", { className: "history" }, intervals.map(historyItem)),
    doc.cursor ? h("p", { className: "note" }, t("customer.older")) : null);
}

function historyItem(interval) {
  const entered = interval.entered || {};
  const left = interval.left;
  return h("li", { "data-testid": "history-item", "data-tag": interval.tag, className: left ? "closed" : "open" },
    h("span", { className: "tag" }, tagLabel(interval.tag)),
    h("span", { className: "dimension" }, dimensionLabel(interval.dimension)),
    h("span", {}, t("customer.entered", { time: when(interval.entered_at) })),
    h("span", { className: "muted" }, t("customer.by", { trigger: entered.trigger ?? "—", rule: entered.rule_id ?? "—" })),
    h("span", {}, left ? t("customer.left", { time: when(interval.left_at) }) : t("customer.held")),
    interval.expired ? h("span", { className: "muted" }, t("customer.expired")) : null,
    reasonText(entered.reason));
}

function reasonText(reason) {
  if (!reason || typeof reason !== "object" || !Object.keys(reason).length) return null;
  const text = Object.entries(reason).map(([name, value]) => `${name} = ${format(value)}`).join(", ");
  return h("code", { className: "reason" }, text);
}

// The explanation document is being added to the engine (SPEC section 9); its reading here keeps
// to a few fields and accepts them a little differently nested, and says so when it is missing.
function renderExplanation(answer) {
  const element = byId("customer-explain");
  if (!answer.ok) {
    fill(element, h("p", { className: "note", "data-testid": "explain-unavailable" },
      t("explain.unavailable", { status: answer.status || "—" })));
    return;
  }
  const doc = answer.body || {};
  const groups = Array.isArray(doc.dimensions) ? doc.dimensions : [];
  fill(element,
    doc.next_deadline ? h("p", { className: "muted" }, t("explain.next_deadline", { time: when(doc.next_deadline) })) : null,
    groups.map((group) => foldable(`dimension:${group.dimension || group.name}`, true, { className: "explain-dimension" },
      h("summary", {}, group.name || group.label || group.dimension),
      h("ul", {}, (Array.isArray(group.tags) ? group.tags : []).map(explainedTag)))));
}

// Each tag in one line (held or not, and why); its condition with the values the engine read
// unfolds below, open for the tags held.
function explainedTag(tag) {
  const values = Array.isArray(tag.values)
    ? tag.values.map((v) => [v.expression, v.value])
    : Object.entries(tag.values || {});
  return h("li", { className: tag.held ? "held" : "not-held", "data-testid": `explain-${tag.tag}` },
    h("span", { className: "mark" }, tag.held ? "✓" : "·"),
    h("strong", {}, tag.name || tag.label || tag.tag),
    h("span", { className: "verdict" }, verdict(tag)),
    tag.condition ? foldable(`tag:${tag.tag}`, Boolean(tag.held), {},
      h("summary", {}, h("span", { className: "muted" }, `${t("explain.when")} `), h("code", {}, tag.condition)),
      values.length ? h("div", { className: "values" }, values.map(([name, value]) => h("code", {}, `${name} = ${value}`))) : null,
      tag.next_change ? h("div", { className: "muted" }, t("explain.next_change", { time: when(tag.next_change) })) : null)
      : null);
}

function foldable(key, open, attributes, ...children) {
  const element = h("details", { ...attributes, open: unfolded.get(key) ?? open }, ...children);
  element.addEventListener("toggle", () => unfolded.set(key, element.open));
  return element;
}

function verdict(tag) {
  const clauses = (tag.failing || []).join("; ");
  const validity = tag.valid_for ? ` ${t("explain.valid_for", { period: tag.valid_for })}` : "";
  if (tag.held) return t("explain.held", { time: when(tag.since) }) + validity;
  if (tag.expired) return t("explain.expired") + validity;
  if (tag.shadowed_by) return t("explain.shadowed", { tag: tagLabel(tag.shadowed_by) });
  if (tag.any_of && clauses) return t("explain.none_of", { clauses });
  if (clauses) return t("explain.fails", { clauses });
  return t("explain.not_held");
}
