// The engine's HTTP API as the page uses it. Every path is relative to the worker that served the
// page; that worker forwards or aggregates, so the page sees the whole group through it.

async function call(method, path, body, headers = {}) {
  let response;
  try {
    response = await fetch(path, { method, body, headers, cache: "no-store" });
  } catch (error) {
    return { status: 0, ok: false, body: { error: String(error) } };
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { error: text };
  }
  return { status: response.status, ok: response.ok, body: parsed };
}

export const api = {
  overview: (lang) => call("GET", `/overview?lang=${lang}`),
  customer: (id) => call("GET", `/customers/${encodeURIComponent(id)}`),
  history: (id, limit = 200) => call("GET", `/customers/${encodeURIComponent(id)}/history?limit=${limit}`),
  explain: (id, lang) => call("GET", `/customers/${encodeURIComponent(id)}/explain?lang=${lang}`),
  audience: (tag, step, from, to) =>
    call("GET", `/tags/${encodeURIComponent(tag)}/audience?step=${step}&from=${from}&to=${to}`),
  members: (tag, limit = 20) => call("GET", `/tags/${encodeURIComponent(tag)}/customers?limit=${limit}`),
  dryRun: (yaml) => call("POST", "/catalog/dry-run", yaml, { "Content-Type": "application/yaml" }),
  publish: (yaml, token) =>
    call("PUT", "/catalog", yaml, { "Content-Type": "application/yaml", Authorization: `Bearer ${token}` }),
};

// The message of an unsuccessful answer, for a person.
export function problem(answer) {
  if (answer.status === 0) return answer.body.error;
  const error = answer.body && answer.body.error;
  return `HTTP ${answer.status}${error ? `: ${typeof error === "string" ? error : JSON.stringify(error)}` : ""}`;
}
