/**
 * Drives the storefront and the dashboard in Debian's chromium through playwright-core, for
 * tests/web/test_browser.py: each step asserts on what the page shows and saves a screenshot.
 *
 *   node dist/test/browser.mjs <config.json>
 *   {"base": "http://127.0.0.1:8080", "shop": "acme", "storefront": "ksk...", "admin": "ksk...",
 *    "customer": "alice", "screenshots": "var/screenshots", "chromium": "/usr/bin/chromium",
 *    "ecosystem": true}
 *
 * Prints {"steps": [...]} on success; throws (exit 1) naming the step that failed.
 */
import { readFileSync, mkdirSync } from "node:fs";
import { chromium, type Page } from "playwright-core";

interface Config {
  base: string;
  shop: string;
  storefront: string;
  admin: string;
  customer: string;
  screenshots: string;
  chromium: string;
  /** Whether the cluster serves the customer-ecosystem RPCs (tastes, consent, links, erasure). */
  ecosystem: boolean;
  /** A brand to exclude, whose items the next offers must not show. */
  brand: string;
  /** The replicas (hostname/pid) whose heartbeats the dashboard must show as SERVING. */
  replicas: string[];
}

const config = JSON.parse(readFileSync(process.argv[2], "utf8")) as Config;
const steps: string[] = [];

let current: Page | undefined;

async function check(condition: boolean, what: string): Promise<void> {
  if (condition) return;
  const status = current ? await current.locator("#status").textContent().catch(() => "") : "";
  if (current) await shot(current, "failed");
  throw new Error(`${steps.at(-1) ?? "start"}: ${what} (the page says "${status ?? ""}")`);
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${config.screenshots}/${name}.png`, fullPage: true });
}

/** Runs `action` and waits until the page has rendered again (body[data-ready] changes). */
async function rendered(page: Page, action: () => Promise<unknown>): Promise<void> {
  const before = await page.getAttribute("body", "data-ready");
  await action();
  try {
    await page.waitForFunction((b) => document.body.dataset.ready && document.body.dataset.ready !== b, before, { timeout: 15000 });
  } catch (error) {
    await shot(page, "failed");
    throw new Error(`${steps.at(-1)}: no new render; the page says "${await page.getByTestId("status").textContent()}"`);
  }
}

async function offered(page: Page, section: string): Promise<string[]> {
  return page.locator(`[data-testid=offers-${section}] [data-testid=offer]`).evaluateAll((els) => els.map((e) => e.getAttribute("data-item") ?? ""));
}

async function storefront(page: Page): Promise<void> {
  steps.push("storefront: open with the keys in the fragment");
  await page.goto(`${config.base}/#storefront=${config.storefront}&admin=${config.admin}&shop=${config.shop}`);
  await page.getByTestId("pick").waitFor();
  await check(!page.url().includes("ksk."), "the keys stay out of the address bar after loading");

  steps.push("storefront: browse anonymously");
  await rendered(page, () => page.getByTestId("anonymous").click());
  await check((await page.getByTestId("who").textContent())?.startsWith("anonymous") ?? false, "anonymous");
  await check((await offered(page, "home")).length > 0, "offers for an anonymous visitor");
  await shot(page, "storefront-anonymous");

  steps.push("storefront: log in and see offers with reasons");
  await rendered(page, () => page.getByTestId("customer-picker").selectOption(config.customer));
  if (config.ecosystem)
    await check((await page.locator("#status").textContent())?.includes("is linked to") ?? false, "the anonymous browsing is linked at login");
  const first = await offered(page, "home");
  await check(first.length > 0, "offers on the home page");
  const reasons = await page.locator("[data-testid=offers-home] [data-testid=reason]").allTextContents();
  await check(reasons.length === first.length && reasons.every((r) => r.trim().length > 0), "every offer has a reason");
  await shot(page, "storefront-home");

  steps.push("storefront: dismiss an offer and the next offers change");
  await rendered(page, () => page.locator(`[data-testid=offer][data-item="${first[0]}"] [data-testid=dismiss]`).click());
  const after = await offered(page, "home");
  await check(!after.includes(first[0]), `the dismissed ${first[0]} is gone`);
  await check((await page.getByTestId("status").textContent())?.includes("will not be offered again") ?? false, "the page says so");
  await shot(page, "storefront-after-dismiss");

  steps.push("storefront: a product page with similar items and offers");
  const viewed = after[0];
  await rendered(page, () => page.locator(`[data-testid=offer][data-item="${viewed}"] [data-testid=view]`).click());
  await page.getByTestId("product").waitFor();
  await check((await page.locator("[data-testid=similar] [data-testid=offer]").count()) > 0, "similar items");
  await check(!(await offered(page, "product")).includes(viewed), "the product itself is not offered on its own page");
  await shot(page, "storefront-product");

  steps.push("storefront: the cart, with offers for it");
  await rendered(page, () => page.getByTestId("product-add").click());
  await check((await page.getByTestId("cart-item").count()) === 1, "one item in the cart");
  const forCart = await offered(page, "cart");
  await check(forCart.length > 0 && !forCart.includes(viewed), "offers for the cart, not the item in it");
  await shot(page, "storefront-cart");

  steps.push("storefront: buy from the offers");
  const bought = forCart[0];
  await rendered(page, () => page.locator(`[data-testid=offers-cart] [data-testid=offer][data-item="${bought}"] [data-testid=buy]`).click());
  await check((await page.getByTestId("status").textContent())?.startsWith("You bought") ?? false, "the purchase is acknowledged");

  steps.push("storefront: exclude a brand and its items leave the offers");
  await rendered(page, () => page.getByTestId("nav-profile").click());
  await page.getByTestId("exclusion-kind").selectOption({ label: "brand" });
  await page.getByTestId("exclusion-value").fill(config.brand);
  await rendered(page, () => page.getByTestId("add-exclusion").click());
  await check((await page.getByTestId("exclusion").allTextContents()).some((t) => t.includes(config.brand)), "the exclusion is listed");
  await page.getByTestId("preference-kind").selectOption({ label: "I like the category" });
  await page.getByTestId("preference-value").fill("Garden");
  await rendered(page, () => page.getByTestId("add-preference").click());
  await check((await page.getByTestId("preference").allTextContents()).some((t) => t.endsWith(": Garden")), "the liked category is listed");
  await page.getByTestId("price-min").fill("1");
  await page.getByTestId("price-max").fill("40");
  await rendered(page, () => page.getByTestId("set-price").click());
  await check((await page.getByTestId("price").textContent())?.includes("£40.00") ?? false, "the price range is listed");
  await shot(page, "storefront-profile");
  await rendered(page, () => page.getByTestId("nav-home").click());
  const metas = await page.locator("[data-testid=offers-home] .meta").allTextContents();
  await check(metas.length > 0 && metas.every((m) => !m.split(" · ").includes(config.brand)), `no ${config.brand} offers`);

  steps.push("storefront: the pages reported what they showed, and the experiment counts it");
  const report = await fetch(`${config.base}/kosmos.v1.ExperimentService/GetExperimentReport`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${config.admin}` },
    body: JSON.stringify({ name: `shops/${config.shop}/experiments/lift` }),
  }).then((r) => r.json());
  const counted = (report.variants ?? []).reduce(
    (sum: { impressions: number; clicks: number }, v: { impressions?: string; clicks?: string }) => ({
      impressions: sum.impressions + Number(v.impressions ?? 0),
      clicks: sum.clicks + Number(v.clicks ?? 0),
    }),
    { impressions: 0, clicks: 0 },
  );
  await check(counted.impressions > 0 && counted.clicks > 0, `impressions and clicks reach the experiment: ${JSON.stringify(counted)}`);

  if (config.ecosystem) {
    steps.push("storefront: what we think you like, consent, a second device, erasure");
    await rendered(page, () => page.getByTestId("nav-profile").click());
    const tastes = await page.getByTestId("taste").allTextContents();
    await check(tastes.length > 0, "inferred tastes are shown");
    await rendered(page, () => page.getByTestId("correct-taste").first().click());
    const corrected = tastes[0].split(" (")[0];
    const after = await page.getByTestId("taste").allTextContents();
    await check(!after.some((t) => t.startsWith(`${corrected} (`)), `"${corrected}" is no longer inferred`);
    await check((await page.getByTestId("preference").allTextContents()).some((p) => p.includes(corrected.split(" ").pop() ?? "")), "it is a stated dislike now");
    await rendered(page, () => page.getByTestId("consent-training").uncheck());
    await check(!(await page.getByTestId("consent-training").isChecked()), "the training consent stays off after a reload of the profile");
    await rendered(page, () => page.getByTestId("link-device").click());
    const linked = ((await page.locator("#status").textContent()) ?? "").replace("Linked ", "");
    const devices = await page.getByTestId("device").allTextContents();
    await check(devices.length === 2 && devices.some((d) => d.startsWith(linked)), `the browser and ${linked} are listed`);
    await shot(page, "storefront-devices");
    await page.getByTestId("erase").click();
    await page.getByTestId("receipt").waitFor();
    await check((await page.getByTestId("receipt").textContent())?.includes(`customers/${config.customer}`) ?? false, "the receipt names the customer");
    await shot(page, "storefront-erased");
  }

}

async function dashboard(page: Page): Promise<void> {
  steps.push("dashboard: replicas, health, models, metrics");
  await page.goto(`${config.base}/dashboard/#admin=${config.admin}&shop=${config.shop}`);
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 20000 });
  const health = await page.locator("[data-testid=health] tr[data-service]").evaluateAll((rows) =>
    rows.map((r) => [r.getAttribute("data-service"), r.getAttribute("data-status")]),
  );
  await check(health.length >= 4 && health.every(([, s]) => s === "SERVING"), `every service SERVING: ${JSON.stringify(health)}`);
  const replicas = await page.locator("[data-testid=replicas] tr[data-replica]").evaluateAll((rows) =>
    rows.map((r) => [r.getAttribute("data-replica"), r.getAttribute("data-status")]),
  );
  await check(
    replicas.length === config.replicas.length && config.replicas.every((id) => replicas.some(([r, s]) => r === id && s === "SERVING")),
    `every replica listed, SERVING: ${JSON.stringify(replicas)}, expected ${JSON.stringify(config.replicas)}`,
  );
  await check((await page.locator("[data-testid=models] tr[data-version]").count()) > 0, "model versions listed");
  await check((await page.locator("[data-testid=chart-offers] [data-testid=bar]").count()) > 0, "offers served, drawn");
  await check((await page.locator("[data-testid=chart-feedback] [data-testid=bar]").count()) > 0, "feedback, drawn");
  const plugins = await page.locator("[data-testid=chart-plugins] [data-testid=bar]").evaluateAll((bars) => bars.map((b) => b.getAttribute("data-label")));
  await check(plugins.includes("popularity"), `the popularity plugin's latency is drawn: ${JSON.stringify(plugins)}`);
  steps.push("dashboard: merchant rules and the experiment's variants");
  const rules = await page.locator("[data-testid=rules] tr[data-rule]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-rule")));
  await check(rules.includes("lift-garden"), `the merchant rule is listed: ${JSON.stringify(rules)}`);
  const variants = await page.locator("[data-testid=ctr] [data-testid=bar]").evaluateAll((bars) => bars.map((b) => b.getAttribute("data-label")));
  await check(variants.includes("control") && variants.includes("lifted"), `the experiment's variants are drawn with their CTR: ${JSON.stringify(variants)}`);
  await shot(page, "dashboard");
}

async function main(): Promise<void> {
  mkdirSync(config.screenshots, { recursive: true });
  const browser = await chromium.launch({ executablePath: config.chromium, args: ["--no-sandbox", "--disable-gpu"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    current = page;
    page.on("pageerror", (error) => console.error(`page error: ${error.message}`));
    await storefront(page);
    await dashboard(page);
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify({ steps }) + "\n");
}

main().catch((error) => {
  console.error(String(error?.stack ?? error));
  console.error(`steps done: ${JSON.stringify(steps)}`);
  process.exit(1);
});
