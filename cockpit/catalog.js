// The catalog: every dimension and tag with its name, definition and customers; a candidate
// catalog tried against every customer (POST /catalog/dry-run) and published (PUT /catalog).

import { api, problem } from "./api.js";
import { byId, fill, h, number } from "./dom.js";
import { t } from "./i18n.js";
import { dimensions, store, tagLabel } from "./store.js";

const COUNTS = ["catalog.enter", "catalog.leave", "catalog.tasks"];
let lastDryRun = null; // kept so that a language switch redraws it in the other language
let lastPublish = null;

export function setUp() {
  byId("candidate-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (file) byId("candidate").value = await file.text();
  });
  byId("dry-run").addEventListener("click", dryRun);
  byId("publish").addEventListener("click", publish);
}

export function render() {
  const catalog = store.catalog;
  if (!catalog) return;
  fill(byId("catalog-version"), t("catalog.version", { name: catalog.catalog, version: catalog.version }));
  fill(byId("catalog-dimensions"), dimensions().map((d) => h("div", { className: "card" },
    h("h3", {}, d.label, " ", h("code", {}, d.name)),
    h("p", { className: "muted" }, t(d.exclusive ? "catalog.exclusive" : "catalog.inclusive")),
    h("table", { className: "grid-table" },
      h("thead", {}, h("tr", {}, ["catalog.tag", "catalog.name", "catalog.definition", "catalog.customers"]
        .map((key) => h("th", {}, t(key))))),
      h("tbody", {}, d.tags.map((tag) => h("tr", { "data-testid": `catalog-${tag.tag}` },
        h("td", {}, h("code", {}, tag.tag)),
        h("td", {}, tag.label),
        h("td", {}, tag.definition),
        h("td", { className: "number" }, number(tag.customers)))))))));
  if (lastDryRun) showDryRun(lastDryRun);
  if (lastPublish) showPublish(lastPublish);
}

async function dryRun() {
  const yaml = byId("candidate").value;
  lastPublish = null;
  fill(byId("publish-result"));
  lastDryRun = yaml.trim() ? await api.dryRun(yaml) : { status: -1 };
  showDryRun(lastDryRun);
}

function showDryRun(answer) {
  const element = byId("dry-run-result");
  if (answer.status === -1) return fill(element, h("p", { className: "error" }, t("catalog.empty")));
  if (answer.status === 422) return fill(element, problems(answer.body));
  if (!answer.ok) return fill(element, h("p", { className: "error" }, problem(answer)));
  const doc = answer.body;
  return fill(element,
    h("p", {}, t("catalog.dry_result", { version: doc.version, customers: number(doc.customers) }),
      doc.tasks !== undefined ? ` ${t("catalog.dry_tasks", { tasks: number(doc.tasks) })}` : ""),
    moves(doc.tags || {}));
}

// Per tag that anyone would enter or leave: the counts, the tasks the entries would create and
// a few of the customers (when the engine gives them); the tags nobody moves in one line.
function moves(tags) {
  const moving = Object.entries(tags).filter(([, m]) => m.enter || m.leave);
  const still = Object.keys(tags).filter((tag) => !(tags[tag].enter || tags[tag].leave));
  const tasks = moving.some(([, m]) => m.tasks !== undefined);
  const samples = moving.some(([, m]) => Array.isArray(m.enter_sample) || Array.isArray(m.leave_sample));
  const headers = ["catalog.tag", "catalog.enter", "catalog.leave", tasks && "catalog.tasks",
    samples && "catalog.enter_sample", samples && "catalog.leave_sample"].filter(Boolean);
  return [
    moving.length ? h("table", { className: "grid-table" },
      h("thead", {}, h("tr", {}, headers.map((key) => h("th", { className: COUNTS.includes(key) ? "number" : null }, t(key))))),
      h("tbody", {}, moving.map(([tag, m]) => h("tr", { "data-testid": `dry-${tag}` },
        h("td", {}, tagLabel(tag), " ", h("code", {}, tag)),
        h("td", { className: "number enter" }, number(m.enter)),
        h("td", { className: "number leave" }, number(m.leave)),
        tasks ? h("td", { className: "number tasks" }, number(m.tasks ?? 0)) : null,
        samples ? h("td", { className: "sample" }, customerLinks(m.enter_sample)) : null,
        samples ? h("td", { className: "sample" }, customerLinks(m.leave_sample)) : null))))
      : h("p", { className: "note" }, t("catalog.no_moves")),
    still.length ? h("p", { className: "muted" }, t("catalog.unmoved", { tags: still.map(tagLabel).join(", ") })) : null,
  ];
}

function customerLinks(ids) {
  return (ids || []).flatMap((id, i) => [i ? ", " : null, h("a", { href: `#/customer/${encodeURIComponent(id)}` }, id)]);
}

function problems(body) {
  return h("div", { className: "error" }, h("p", {}, t("catalog.problems")),
    h("ul", {}, ((body && body.problems) || [body && body.error]).map((p) => h("li", {}, h("code", {}, p)))));
}

async function publish() {
  const yaml = byId("candidate").value;
  lastPublish = yaml.trim() ? await api.publish(yaml, byId("token").value) : { status: -1 };
  showPublish(lastPublish);
}

function showPublish(answer) {
  const element = byId("publish-result");
  if (answer.status === -1) return fill(element, h("p", { className: "error" }, t("catalog.empty")));
  if (answer.status === 202) {
    return fill(element, h("p", { className: "ok" }, t("catalog.published", { version: answer.body.version })),
      answer.body.tags ? moves(answer.body.tags) : null);
  }
  if (answer.status === 401) return fill(element, h("p", { className: "error" }, t("catalog.unauthorised")));
  if (answer.status === 403) return fill(element, h("p", { className: "error" }, t("catalog.forbidden", { error: answer.body.error })));
  if (answer.status === 422) return fill(element, problems(answer.body));
  return fill(element, h("p", { className: "error" }, problem(answer)));
}
