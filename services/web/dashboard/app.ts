/**
 * The operator dashboard: the health of each replica and service, model versions, serving and feedback metrics, merchant rules
 * and experiments of one shop, read through the generated client and the HTTP port's /metrics
 * (the process's Prometheus endpoint). Key and shop come in the fragment: #admin=ksk...&shop=demo.
 */
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, ExperimentState, RuleAction, createKosmos, type MetricEstimate } from "../src/index.js";

const params = new URLSearchParams(location.hash.slice(1));
for (const name of ["admin", "shop"]) {
  const value = params.get(name);
  if (value) sessionStorage.setItem(`kosmos.${name}`, value);
}
if (params.has("admin")) history.replaceState(null, "", location.pathname);
const SHOP = sessionStorage.getItem("kosmos.shop") ?? "demo";
const kosmos = createKosmos({ baseUrl: location.origin, apiKey: () => sessionStorage.getItem("kosmos.admin") ?? "" });
const SERVICES = [
  "kosmos.v1.ProfileService",
  "kosmos.v1.CatalogService",
  "kosmos.v1.FeedbackService",
  "kosmos.v1.RecommendationService",
  "kosmos.v1.ModelService",
  "kosmos.v1.ShopSettingsService",
  "kosmos.v1.ApiKeyService",
  "kosmos.v1.MerchantRulesService",
  "kosmos.v1.ExperimentService",
];
const REFRESH_MS = 5000;

function h(tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const child of children) el.append(child);
  return el;
}

function svg(tag: string, attrs: Record<string, string | number>): SVGElement {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

function card(title: string, testid: string, ...body: (Node | string)[]): HTMLElement {
  return h("section", { class: "card", "data-testid": testid }, h("h2", {}, title), ...body);
}

function describe(error: unknown): string {
  const err = ConnectError.from(error);
  if (err.code === Code.Unimplemented) return "not served by this cluster yet";
  return `${Code[err.code]}: ${err.rawMessage}`;
}

const age = (seconds: number) =>
  seconds < 120 ? `${Math.round(seconds)} s` : seconds < 7200 ? `${Math.round(seconds / 60)} min` : seconds < 172800 ? `${Math.round(seconds / 3600)} h` : `${Math.round(seconds / 86400)} d`;

// ---------------------------------------------------------------- charts (plain SVG: the tests read the bars)

interface Bar {
  label: string;
  value: number;
  low?: number;
  high?: number;
  note?: string;
}

/** Horizontal bars, with a confidence interval as a whisker when a bar has one. */
function bars(testid: string, data: Bar[], unit = ""): Node {
  if (!data.length) return h("p", { class: "unavailable", "data-testid": `${testid}-empty` }, "No data yet.");
  const width = 440, row = 22, left = 150, right = 150;
  const max = Math.max(...data.map((d) => d.high ?? d.value), 1e-9);
  const chart = svg("svg", { width, height: data.length * row + 4, "data-testid": testid, role: "img" });
  data.forEach((d, i) => {
    const y = i * row + 2, scale = (v: number) => left + ((width - left - right) * v) / max;
    const label = svg("text", { x: 0, y: y + 14 });
    label.textContent = d.label.length > 24 ? `${d.label.slice(0, 23)}…` : d.label;
    const rect = svg("rect", { x: left, y: y + 3, width: Math.max(scale(d.value) - left, 1), height: row - 8, fill: "#2f6fdb", "data-testid": "bar", "data-label": d.label, "data-value": d.value });
    chart.append(label, rect);
    if (d.low !== undefined && d.high !== undefined)
      chart.append(svg("line", { x1: scale(d.low), x2: scale(d.high), y1: y + row / 2, y2: y + row / 2, stroke: "#1d232a", "stroke-width": 2, "data-testid": "ci" }));
    const value = svg("text", { x: scale(d.high ?? d.value) + 4, y: y + 14 });
    value.textContent = d.note ?? `${Number(d.value.toPrecision(3))}${unit}`;
    chart.append(value);
  });
  return chart;
}

/** A line of the last samples (feedback per second). */
function spark(testid: string, values: number[]): Node {
  const width = 320, height = 60, max = Math.max(...values, 1e-9);
  const chart = svg("svg", { width, height, "data-testid": testid });
  const points = values.map((v, i) => `${(i * width) / Math.max(values.length - 1, 1)},${height - 4 - ((height - 8) * v) / max}`).join(" ");
  chart.append(svg("polyline", { points, fill: "none", stroke: "#2f6fdb", "stroke-width": 2 }));
  return chart;
}

// ---------------------------------------------------------------- Prometheus text

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

function sumBy(samples: Sample[], name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) if (s.name === name) out.set(s.labels[label] ?? "", (out.get(s.labels[label] ?? "") ?? 0) + s.value);
  return out;
}

/** A quantile of a Prometheus histogram (cumulative buckets), by linear interpolation. */
function quantile(samples: Sample[], name: string, match: (l: Record<string, string>) => boolean, q: number): number | undefined {
  const buckets = new Map<number, number>();
  for (const s of samples)
    if (s.name === `${name}_bucket` && match(s.labels)) {
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + s.value);
    }
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (!total) return undefined;
  let previousLe = 0, previousCount = 0;
  for (const [le, count] of sorted) {
    if (count >= q * total) {
      if (le === Infinity) return previousLe;
      return previousLe + ((le - previousLe) * (q * total - previousCount)) / Math.max(count - previousCount, 1e-9);
    }
    previousLe = le;
    previousCount = count;
  }
  return previousLe;
}

const feedbackHistory: { time: number; total: number }[] = [];

function metricsCards(text: string): HTMLElement[] {
  const samples = parseMetrics(text);
  const offers = [...sumBy(samples, "kosmos_offers_served_total", "kosmos_recommender")].map(([label, value]) => ({ label, value }));
  const fallbacks = samples
    .filter((s) => s.name === "kosmos_recommend_fallbacks_total")
    .map((s) => ({ label: `${s.labels.kosmos_recommender} (${s.labels.kosmos_fallback_reason})`, value: s.value }));
  const methods = [...new Set(samples.filter((s) => s.name === "rpc_server_call_duration_seconds_count").map((s) => s.labels.rpc_method))];
  const latency = methods
    .filter((m) => m.startsWith("kosmos.v1."))
    .map((m) => {
      const match = (l: Record<string, string>) => l.rpc_method === m;
      const p50 = (quantile(samples, "rpc_server_call_duration_seconds", match, 0.5) ?? 0) * 1000;
      const p95 = (quantile(samples, "rpc_server_call_duration_seconds", match, 0.95) ?? 0) * 1000;
      return { label: m.replace("kosmos.v1.", ""), value: p50, low: p50, high: p95, note: `p50 ${p50.toFixed(1)} / p95 ${p95.toFixed(1)} ms` };
    });
  const recommenders = [...new Set(samples.filter((s) => s.name === "kosmos_recommender_duration_seconds_count").map((s) => s.labels.kosmos_recommender))];
  const pluginLatency = recommenders.map((name) => {
    const match = (l: Record<string, string>) => l.kosmos_recommender === name;
    const p50 = (quantile(samples, "kosmos_recommender_duration_seconds", match, 0.5) ?? 0) * 1000;
    const p95 = (quantile(samples, "kosmos_recommender_duration_seconds", match, 0.95) ?? 0) * 1000;
    return { label: name, value: p50, low: p50, high: p95, note: `p50 ${p50.toFixed(2)} / p95 ${p95.toFixed(2)} ms` };
  });
  const byType = [...sumBy(samples, "kosmos_feedback_interactions_total", "kosmos_interaction_type")].map(([label, value]) => ({ label, value }));
  const total = byType.reduce((a, b) => a + b.value, 0);
  feedbackHistory.push({ time: Date.now(), total });
  if (feedbackHistory.length > 60) feedbackHistory.shift();
  const rates = feedbackHistory.slice(1).map((p, i) => Math.max(0, (p.total - feedbackHistory[i].total) / ((p.time - feedbackHistory[i].time) / 1000)));
  const freshness = quantile(samples, "kosmos_feedback_freshness_seconds", () => true, 0.5);
  const freshness95 = quantile(samples, "kosmos_feedback_freshness_seconds", () => true, 0.95);
  const modelAge = samples
    .filter((s) => s.name === "kosmos_model_age_seconds")
    .map((s) => ({ label: `${s.labels.kosmos_shop}/${s.labels.kosmos_recommender}`, value: s.value / 3600, note: age(s.value) }));
  return [
    card("Offers served, by recommender", "chart-offers", bars("offers", offers)),
    card("Recommender latency in the chain (bar p50, whisker to p95)", "chart-plugins", bars("plugins", pluginLatency, " ms")),
    card("Fallbacks (a recommender skipped for the next)", "chart-fallbacks", bars("fallbacks", fallbacks)),
    card("Latency per RPC (bar p50, whisker to p95)", "chart-latency", bars("latency", latency, " ms")),
    card(
      "Feedback",
      "chart-feedback",
      bars("feedback", byType),
      h("p", { "data-testid": "feedback-rate" }, `${total} interactions; now ${(rates.at(-1) ?? 0).toFixed(2)}/s`),
      spark("feedback-rate-line", rates.length ? rates : [0]),
      h(
        "p",
        { "data-testid": "freshness" },
        freshness === undefined ? "Freshness: no feedback yet" : `Freshness (event to served): p50 ${freshness.toFixed(2)} s, p95 ${(freshness95 ?? 0).toFixed(2)} s`,
      ),
    ),
    card("Age of the serving model", "chart-model-age", bars("model-age", modelAge, " h")),
  ];
}

// ---------------------------------------------------------------- API-backed cards

async function healthCard(): Promise<HTMLElement> {
  const table = h("table", {}, h("tr", {}, h("th", {}, "service"), h("th", {}, "status")));
  for (const service of ["", ...SERVICES]) {
    let status = "UNKNOWN";
    try {
      const answer = await fetch(`${location.origin}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ service }),
      });
      const body = (await answer.json()) as { status?: string; code?: string };
      status = body.status ?? body.code ?? `HTTP ${answer.status}`;
    } catch (error) {
      status = String(error);
    }
    table.append(
      h("tr", { "data-service": service || "(all)", "data-status": status }, h("td", {}, service || "(the whole process)"), h("td", { class: status === "SERVING" ? "ok" : "bad" }, status)),
    );
  }
  return card(`Health (this replica, ${location.host})`, "health", table);
}

interface ReplicaRow {
  replica: string;
  services: string[];
  version: string;
  startTime: number;
  seenTime: number;
  status: string;
  stale: boolean;
}

/** Every serving process's heartbeat (GET /replicas): one row per replica (hostname/pid), the
 * same with one process, several on one port or pods; a replica that stopped beating is stale. */
async function replicasCard(): Promise<HTMLElement> {
  let listing: { heartbeatSeconds: number; replicas: ReplicaRow[] };
  try {
    const answer = await fetch(`${location.origin}/replicas`, { cache: "no-store" });
    if (!answer.ok) throw new Error(`HTTP ${answer.status}: ${(await answer.text()).trim()}`);
    listing = await answer.json();
  } catch (error) {
    return card("Replicas", "replicas", h("p", { class: "unavailable" }, String(error)));
  }
  const now = Date.now() / 1000;
  const table = h("table", {}, h("tr", {}, h("th", {}, "replica"), h("th", {}, "status"), h("th", {}, "services"), h("th", {}, "version"), h("th", {}, "up"), h("th", {}, "last beat")));
  for (const r of listing.replicas) {
    const status = r.stale ? "STALE" : r.status;
    const services = r.services.map((s) => s.replace(/^kosmos\.v1\./, "").replace(/Service$/, "")).join(", ");
    table.append(
      h("tr", { "data-replica": r.replica, "data-status": status }, h("td", {}, r.replica), h("td", { class: status === "SERVING" ? "ok" : "bad" }, status), h("td", {}, services), h("td", {}, r.version), h("td", {}, age(now - r.startTime)), h("td", {}, `${age(Math.max(0, now - r.seenTime))} ago`)),
    );
  }
  const serving = listing.replicas.filter((r) => !r.stale && r.status === "SERVING").length;
  return card(`Replicas: ${serving} of ${listing.replicas.length} serving`, "replicas", table, h("p", { class: "note" }, `Heartbeat every ${listing.heartbeatSeconds} s; stale after three missed beats.`));
}

async function modelsCard(): Promise<HTMLElement> {
  const body = card(`Model versions of ${SHOP}`, "models");
  body.classList.add("wide");
  try {
    const { modelVersions } = await kosmos.models.listModelVersions({ parent: `shops/${SHOP}`, pageSize: 50 });
    const table = h("table", {}, h("tr", {}, h("th", {}, "version"), h("th", {}, "age"), h("th", {}, "serving"), h("th", {}, "events"), h("th", {}, "fit"), h("th", {}, "holdout figures")));
    for (const v of modelVersions) {
      const created = v.createTime ? timestampDate(v.createTime).getTime() : Date.now();
      const figures = Object.entries(v.metrics).map(([k, x]) => `${k} ${Number.isInteger(x) ? x : x.toFixed(4)}`).join(", ");
      table.append(
        h("tr", { "data-version": v.name }, h("td", {}, v.name.replace(`shops/${SHOP}/recommenders/`, "").replace("/versions/", " ")), h("td", {}, age((Date.now() - created) / 1000)), h("td", { class: v.serving ? "ok" : "" }, v.serving ? "serving" : ""), h("td", {}, String(v.interactions)), h("td", {}, `${v.fitSeconds.toFixed(1)} s`), h("td", {}, figures || "—")),
      );
    }
    body.append(table);
    const ndcg = modelVersions
      .filter((v) => v.serving && v.metrics["ndcg@10"] !== undefined)
      .map((v) => ({ label: (v.name.split("/recommenders/")[1] ?? v.name).split("/")[0], value: v.metrics["ndcg@10"] }));
    if (ndcg.length) body.append(h("h3", {}, "NDCG@10 of the serving versions"), bars("ndcg", ndcg));
  } catch (error) {
    body.append(h("p", { class: "unavailable" }, describe(error)));
  }
  return body;
}

async function rulesCard(): Promise<HTMLElement> {
  const body = card("Merchant rules", "rules");
  try {
    const { rules } = await kosmos.rules.getMerchantRules({ name: `shops/${SHOP}/rules` });
    const table = h("table", {}, h("tr", {}, h("th", {}, "rule"), h("th", {}, "action"), h("th", {}, "match"), h("th", {}, "state")));
    for (const r of rules?.rules ?? []) {
      const match = [...(r.match?.categories ?? []), ...(r.match?.brands ?? []), ...(r.match?.itemIds ?? [])].join(", ");
      table.append(h("tr", { "data-rule": r.ruleId }, h("td", {}, r.displayName || r.ruleId), h("td", {}, RuleAction[r.action].toLowerCase()), h("td", {}, match), h("td", {}, r.disabled ? "disabled" : "on")));
    }
    body.append(rules?.rules.length ? table : h("p", {}, "No rules."));
  } catch (error) {
    body.append(h("p", { class: "unavailable", "data-testid": "rules-unavailable" }, describe(error)));
  }
  return body;
}

function estimate(label: string, e: MetricEstimate | undefined): Bar {
  return { label, value: (e?.value ?? 0) * 100, low: (e?.ciLow ?? 0) * 100, high: (e?.ciHigh ?? 0) * 100, note: `${((e?.value ?? 0) * 100).toFixed(2)}% [${((e?.ciLow ?? 0) * 100).toFixed(2)}, ${((e?.ciHigh ?? 0) * 100).toFixed(2)}]${e?.significant ? " *" : ""}` };
}

async function experimentsCard(): Promise<HTMLElement> {
  const body = card("Experiments", "experiments");
  try {
    const { experiments } = await kosmos.experiments.listExperiments({ parent: `shops/${SHOP}`, pageSize: 10 });
    if (!experiments.length) body.append(h("p", {}, "No experiments."));
    for (const experiment of experiments) {
      const report = await kosmos.experiments.getExperimentReport({ name: experiment.name, confidenceLevel: 0.95 });
      body.append(
        h("h3", { "data-experiment": experiment.name }, `${experiment.displayName || experiment.name} (${ExperimentState[experiment.state].toLowerCase()})`),
        h("p", { class: "meta" }, `control ${report.controlVariantId}; ${report.method}; 95% intervals, * significant`),
        h("h4", {}, "Click-through rate"),
        bars("ctr", report.variants.map((v) => estimate(v.variantId, v.clickThroughRate)), "%"),
        h("h4", {}, "Conversion"),
        bars("conversion", report.variants.map((v) => estimate(v.variantId, v.conversionRate)), "%"),
      );
    }
  } catch (error) {
    body.append(h("p", { class: "unavailable", "data-testid": "experiments-unavailable" }, describe(error)));
  }
  return body;
}

async function metricsText(): Promise<string> {
  const answer = await fetch(`${location.origin}/metrics`);
  return answer.ok ? answer.text() : "";
}

async function render(): Promise<void> {
  const root = document.getElementById("app")!;
  if (!sessionStorage.getItem("kosmos.admin")) {
    root.replaceChildren(h("p", { "data-testid": "keys-missing" }, "Open the dashboard address make run printed: it carries an admin key after the #."));
    return;
  }
  const [replicas, health, models, rules, experiments, text] = await Promise.all([replicasCard(), healthCard(), modelsCard(), rulesCard(), experimentsCard(), metricsText()]);
  const metrics = text ? metricsCards(text) : [card("Metrics", "metrics", h("p", { class: "unavailable" }, "No /metrics: set KOSMOS_METRICS_LISTEN."))];
  const header = h("header", {}, h("span", { class: "brand" }, `Kosmos operator dashboard · shop ${SHOP}`), h("span", { class: "who" }, `updated ${new Date().toLocaleTimeString()}`));
  root.replaceChildren(header, h("main", {}, h("div", { class: "cards" }, replicas, health, models, ...metrics, rules, experiments)));
  document.body.dataset.ready = String(Date.now());
}

async function loop(): Promise<void> {
  await render().catch((error) => {
    document.getElementById("app")!.textContent = describe(error);
  });
  setTimeout(() => void loop(), REFRESH_MS);
}

void loop();
