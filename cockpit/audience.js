// Audiences over time: how many customers held each chosen tag at the end of every hour or day
// (GET /tags/<tag>/audience), with how many entered and left it in the range.

import { api, problem } from "./api.js";
import { lines, show } from "./charts.js";
import { byId, fill, h, number } from "./dom.js";
import { t } from "./i18n.js";
import { dimensions, tagInfo, tagLabel } from "./store.js";

const DAY_MS = 24 * 3600 * 1000;
const chosen = new Set(["new", "active", "high_value"]);
let drawnFor = ""; // the catalog version and language the tag choices were drawn for

export function setUp(onChange) {
  byId("audience-step").addEventListener("change", onChange);
  byId("audience-range").addEventListener("change", onChange);
  byId("audience-tags").addEventListener("change", (event) => {
    const box = event.target;
    if (box.checked) chosen.add(box.value);
    else chosen.delete(box.value);
    onChange();
  });
}

export async function render(catalogKey) {
  if (drawnFor !== catalogKey) {
    drawChoices();
    drawnFor = catalogKey;
  }
  const tags = [...chosen].filter((tag) => tagInfo(tag));
  if (!tags.length) {
    show("chart-audience", {});
    fill(byId("audience-summary"), h("p", { className: "note" }, t("audience.none")));
    return;
  }
  const step = byId("audience-step").value;
  const to = new Date();
  const from = new Date(to.getTime() - Number(byId("audience-range").value) * DAY_MS);
  const answers = await Promise.all(tags.map((tag) => api.audience(tag, step, from.toISOString(), to.toISOString())));
  const failed = answers.find((answer) => !answer.ok);
  if (failed) throw new Error(problem(failed));
  const series = answers.map((answer, i) => ({
    name: tagLabel(tags[i]),
    points: answer.body.points.map(([end, holders]) => [Date.parse(end), holders]),
  }));
  show("chart-audience", lines(series, { step: true }));
  fill(byId("audience-summary"), summary(tags, answers.map((answer) => answer.body)));
}

function drawChoices() {
  // A tag the catalog no longer has cannot stay chosen; with nothing left, show its first tag.
  for (const tag of [...chosen]) if (!tagInfo(tag)) chosen.delete(tag);
  const all = dimensions().flatMap((d) => d.tags);
  if (!chosen.size && all.length) chosen.add(all[0].tag);
  fill(byId("audience-tags"), dimensions().map((d) =>
    h("fieldset", {}, h("legend", {}, d.label), d.tags.map((tag) =>
      h("label", { className: "choice" },
        h("input", { type: "checkbox", value: tag.tag, checked: chosen.has(tag.tag) }),
        tag.label)))));
}

function summary(tags, documents) {
  const total = (pairs) => pairs.reduce((sum, [, n]) => sum + n, 0);
  return h("table", { className: "grid-table" },
    h("thead", {}, h("tr", {},
      ["audience.tag", "audience.now", "audience.entered", "audience.left"]
        .map((key, i) => h("th", { className: i ? "number" : null }, t(key))))),
    h("tbody", {}, documents.map((doc, i) => {
      const last = doc.points[doc.points.length - 1];
      return h("tr", { "data-testid": `audience-${tags[i]}` },
        h("td", {}, tagLabel(tags[i])),
        h("td", { className: "number" }, number(last ? last[1] : 0)),
        h("td", { className: "number" }, number(total(doc.entered))),
        h("td", { className: "number" }, number(total(doc.left))));
    })));
}
