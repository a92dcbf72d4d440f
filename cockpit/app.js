// The cockpit's entry point: pages by URL hash (#/overview, #/audience, #/customer/<id>,
// #/catalog), a look at the engine every 2 seconds, and the language switch. Nothing reloads: each
// look redraws the page shown from fresh answers.

import { api, problem } from "./api.js";
import * as audience from "./audience.js";
import * as catalog from "./catalog.js";
import { resizeCharts } from "./charts.js";
import * as customer from "./customer.js";
import { byId, when } from "./dom.js";
import { lang, relabel, setLang, t } from "./i18n.js";
import * as overview from "./overview.js";
import { store } from "./store.js";

const PAGES = ["overview", "audience", "customer", "catalog"];
const EVERY_MS = 2000;

let route = parse(location.hash);
let busy = false; // one look at a time
let again = false; // a person asked for a look while one was running: take another right after

function parse(hash) {
  const [page, ...rest] = hash.replace(/^#\/?/, "").split("/");
  return { page: PAGES.includes(page) ? page : "overview", id: decodeURIComponent(rest.join("/")) };
}

async function look(asked = true) {
  if (busy) {
    again = again || asked;
    return;
  }
  busy = true;
  try {
    const answer = await api.overview(lang());
    if (!answer.ok) throw new Error(problem(answer));
    store.overview = answer.body;
    store.catalog = answer.body.catalog;
    overview.record(answer.body);
    await draw();
    live(true, t("status.live", { time: when(answer.body.as_of) }));
  } catch (error) {
    live(false, t("status.error", { error: error.message || error }));
  } finally {
    busy = false;
    if (again) {
      again = false;
      look();
    }
  }
}

async function draw() {
  if (route.page === "overview") overview.render();
  else if (route.page === "audience") await audience.render(`${store.catalog.version}:${lang()}`);
  else if (route.page === "customer") await customer.render(route.id, lang());
  else catalog.render();
}

function live(ok, text) {
  const status = byId("status");
  status.classList.toggle("error", !ok);
  const version = store.catalog ? t("status.catalog", { name: store.catalog.catalog, version: store.catalog.version }) : "";
  status.textContent = ok ? `${text} · ${version}` : text;
}

function navigate() {
  route = parse(location.hash);
  for (const page of PAGES) byId(`page-${page}`).hidden = page !== route.page;
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.page === route.page);
  }
  if (route.page === "customer") byId("customer-id").value = route.id;
  requestAnimationFrame(resizeCharts); // charts drawn while hidden had no size
  look();
}

function choose(language, fetch = true) {
  setLang(language);
  relabel();
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === language));
  }
  if (fetch) look(); // the catalog's names in the new language
}

function start() {
  if (!window.echarts) {
    live(false, "echarts.min.js did not load: run `make cockpit`");
    return;
  }
  for (const button of document.querySelectorAll("[data-lang]")) {
    button.addEventListener("click", () => choose(button.dataset.lang));
  }
  audience.setUp(() => look());
  customer.setUp((id) => { location.hash = `#/customer/${encodeURIComponent(id)}`; });
  catalog.setUp();
  window.addEventListener("hashchange", navigate);
  window.addEventListener("resize", resizeCharts);
  choose(lang(), false);
  navigate();
  setInterval(() => look(false), EVERY_MS);
}

start();
