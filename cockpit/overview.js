// The overview: customers known, rates of events and changes (from the running totals of two
// successive looks), dead letters, lag, the two funnels, channel share, intent levels, and the
// customers of every tag per dimension.

import { bars, funnel, lines, pie, show } from "./charts.js";
import { byId, fill, h, number } from "./dom.js";
import { t } from "./i18n.js";
import { channelLabel, dimension, dimensions, store } from "./store.js";

const RATES = ["events_in", "tag_changes", "tasks"];
const KEPT = 150; // rate samples in the chart: 5 minutes at one look every 2 s
const samples = []; // {at, totals: {events_in, ...}, rates: {events_in, ...}}

// Called after every look at GET /overview, whichever page is shown, so rates stay continuous.
export function record(overview) {
  const at = Date.now();
  const last = samples[samples.length - 1];
  if (last && at - last.at < 1000) return; // an extra look (a language switch) is too short a base
  const totals = Object.fromEntries(RATES.map((name) => [name, overview[name] ?? 0]));
  const before = samples[samples.length - 1];
  const rates = {};
  for (const name of RATES) {
    const seconds = before ? (at - before.at) / 1000 : 0;
    const moved = before ? totals[name] - before.totals[name] : null;
    // A total that went down belongs to a restarted worker: no rate for that interval.
    rates[name] = seconds > 0 && moved >= 0 ? moved / seconds : null;
  }
  samples.push({ at, totals, rates });
  if (samples.length > KEPT) samples.shift();
}

export function render() {
  const overview = store.overview;
  if (!overview) return;
  renderNumbers(overview);
  renderFunnel("chart-lifecycle", "lifecycle", ["prospect", "new", "growing", "mature"]);
  renderFunnel("chart-deal", "intent", ["early", "high_intent", "won", "lost_deal"]);
  renderChannels(overview.channels || {});
  renderIntent();
  show("chart-rates", lines([
    { name: t("chart.events"), points: rateSeries("events_in") },
    { name: t("chart.changes"), points: rateSeries("tag_changes") },
  ], { area: true }));
  renderTagCounts();
}

function renderNumbers(overview) {
  const latest = samples[samples.length - 1];
  const rate = (name) => (latest && latest.rates[name] !== null ? number(latest.rates[name], 1) : "—");
  byId("kpi-customers").textContent = number(overview.customers);
  byId("kpi-events").textContent = rate("events_in");
  byId("kpi-events-total").textContent = t("kpi.total", { n: number(overview.events_in) });
  byId("kpi-changes").textContent = rate("tag_changes");
  byId("kpi-changes-total").textContent = t("kpi.total", { n: number(overview.tag_changes) });
  byId("kpi-tasks").textContent = rate("tasks");
  byId("kpi-tasks-total").textContent = t("kpi.total", { n: number(overview.tasks) });
  byId("kpi-dead-letters").textContent = number(overview.dead_letters);
  byId("kpi-lag").textContent = number(overview.lag);
}

function rateSeries(name) {
  return samples.filter((s) => s.rates[name] !== null).map((s) => [s.at, Number(s.rates[name].toFixed(2))]);
}

// The stages of a funnel are the tags named, in that order, as far as the catalog has them; the
// chart says so when the catalog has no such dimension (a custom catalog).
function renderFunnel(id, dimensionName, stages) {
  const found = dimension(dimensionName);
  const element = byId(id);
  element.classList.toggle("empty", !found);
  element.dataset.empty = found ? "" : t("chart.missing", { dimension: dimensionName });
  if (!found) {
    show(id, {});
    return;
  }
  const tags = new Map(found.tags.map((tag) => [tag.tag, tag]));
  const ordered = stages.filter((name) => tags.has(name)).map((name) => tags.get(name));
  show(id, funnel(ordered.map((tag) => ({ name: tag.label, value: tag.customers }))));
}

function renderChannels(channels) {
  const items = Object.entries(channels)
    .filter(([, count]) => count > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([channel, count]) => ({ name: channelLabel(channel), value: count }));
  show("chart-channels", pie(items));
}

function renderIntent() {
  const intent = dimension("intent");
  const element = byId("chart-intent");
  element.classList.toggle("empty", !intent);
  element.dataset.empty = intent ? "" : t("chart.missing", { dimension: "intent" });
  show("chart-intent", intent ? bars(intent.tags.map((tag) => ({ name: tag.label, value: tag.customers }))) : {});
}

function renderTagCounts() {
  const cards = dimensions().map((d) => {
    const largest = Math.max(1, ...d.tags.map((tag) => tag.customers));
    return h("div", { className: "card dimension", "data-dimension": d.name },
      h("h3", {}, d.label),
      h("table", { className: "counts" }, h("tbody", {}, d.tags.map((tag) =>
        h("tr", { "data-testid": `count-${tag.tag}`, title: tag.definition },
          h("td", { className: "tag-name" }, tag.label),
          h("td", { className: "bar" }, h("span", { style: `width: ${(100 * tag.customers) / largest}%` })),
          h("td", { className: "count" }, number(tag.customers)))))));
  });
  fill(byId("tag-counts"), cards);
}
