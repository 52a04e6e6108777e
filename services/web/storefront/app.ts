/**
 * The demo storefront: what a shop's pages do with Kosmos, through the generated client.
 *
 * Keys come in the URL's fragment (#storefront=ksk...&admin=ksk...&shop=demo), which the browser
 * never sends to a server. The storefront key asks for offers and records feedback, as a shop's
 * pages would; the admin key stands in for the shop's backend (profiles, catalog, consent).
 */
import { create } from "@bufbuild/protobuf";
import { timestampNow, timestampDate } from "@bufbuild/protobuf/wkt";
import {
  Code,
  ConnectError,
  ConsentPurpose,
  CustomerSchema,
  ExclusionKind,
  ExclusionSchema,
  PreferenceSchema,
  PriceRangeSchema,
  InteractionType,
  PreferenceKind,
  createKosmos,
  fieldViolations,
  type Customer,
  type Item,
  type Offer,
  type Kosmos,
} from "../src/index.js";

const params = new URLSearchParams(location.hash.slice(1));
for (const name of ["storefront", "admin", "shop"]) {
  const value = params.get(name);
  if (value) sessionStorage.setItem(`kosmos.${name}`, value);
}
const SHOP = sessionStorage.getItem("kosmos.shop") ?? "demo";
const front: Kosmos = createKosmos({ baseUrl: location.origin, apiKey: () => sessionStorage.getItem("kosmos.storefront") ?? "" });
const back: Kosmos = createKosmos({ baseUrl: location.origin, apiKey: () => sessionStorage.getItem("kosmos.admin") ?? "" });
const shop = `shops/${SHOP}`;

type View = { page: "home" } | { page: "product"; itemId: string } | { page: "cart" } | { page: "profile" };

const state = {
  customerId: "",
  anonymous: false,
  view: { page: "home" } as View,
  cart: [] as string[],
  catalog: new Map<string, Item>(),
  lastOffers: [] as string[],
};

// ---------------------------------------------------------------- helpers

function h(tag: string, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") el.textContent = v;
    else el.setAttribute(k, v);
  }
  for (const child of children) el.append(child);
  return el;
}

function button(label: string, testid: string, action: () => Promise<void> | void): HTMLButtonElement {
  const b = h("button", { "data-testid": testid, type: "button" }, label) as HTMLButtonElement;
  b.addEventListener("click", () => {
    b.disabled = true;
    Promise.resolve(action())
      .catch(showError)
      .finally(() => (b.disabled = false));
  });
  return b;
}

function describe(error: unknown): string {
  const err = ConnectError.from(error);
  const fields = fieldViolations(err).map((f) => f.field);
  if (err.code === Code.Unimplemented) return `not served by this cluster yet (${err.rawMessage || "UNIMPLEMENTED"})`;
  return `${Code[err.code]}: ${err.rawMessage}${fields.length ? ` (${fields.join(", ")})` : ""}`;
}

function showError(error: unknown): void {
  const bar = document.getElementById("status")!;
  bar.textContent = describe(error);
  bar.className = "status error";
  bar.setAttribute("data-testid", "status");
}

function showStatus(text: string): void {
  const bar = document.getElementById("status")!;
  bar.textContent = text;
  bar.className = "status";
}

const customerName = (id = state.customerId) => `${shop}/customers/${id}`;
const itemId = (name: string) => name.split("/").pop() ?? name;
const money = (price: number) => (price ? `£${price.toFixed(2)}` : "");

async function loadCatalog(): Promise<void> {
  let pageToken = "";
  do {
    const page = await back.catalog.listItems({ parent: shop, pageSize: 500, pageToken });
    for (const item of page.items) state.catalog.set(itemId(item.name), item);
    pageToken = page.nextPageToken;
  } while (pageToken);
}

async function record(item: string, type: InteractionType, recommendationId = ""): Promise<void> {
  await front.feedback.recordInteractions({
    parent: shop,
    requestId: crypto.randomUUID(),
    interactions: [{ customer: customerName(), itemId: item, type, eventTime: timestampNow(), recommendationId, value: 1 }],
  });
}

/**
 * Tells Kosmos which offers of a list the page showed. An impression is never a positive signal:
 * what is shown again and again and ignored sinks for this shopper, and experiments count
 * click-through and conversion per impression.
 */
async function shown(recommendationId: string, offers: Offer[]): Promise<void> {
  if (!recommendationId || !offers.length) return;
  await front.feedback.recordImpressions({
    parent: shop,
    impressions: [{ customer: customerName(), recommendationId, itemIds: offers.map((o) => itemId(o.item)) }],
  });
}

// ---------------------------------------------------------------- offers

function offerCard(offer: Offer, recommendationId: string, fresh: boolean): HTMLElement {
  const id = itemId(offer.item);
  const item = state.catalog.get(id);
  const card = h("article", { class: `offer${fresh ? " fresh" : ""}`, "data-testid": "offer", "data-item": id });
  card.append(
    h("h3", {}, h("a", { href: `#product/${id}`, "data-testid": "offer-title" }, offer.title || item?.title || id)),
    h("p", { class: "meta" }, [item?.category, item?.brand, money(item?.price ?? 0)].filter(Boolean).join(" · ")),
    h("p", { class: "reason", "data-testid": "reason" }, offer.reason),
    h("p", { class: "source" }, `${offer.recommender} · score ${offer.score.toFixed(3)}`),
  );
  const actions = h("div", { class: "actions" });
  actions.append(
    button("View", "view", async () => {
      await record(id, InteractionType.CLICK, recommendationId);
      go({ page: "product", itemId: id });
    }),
    button("Add to cart", "add-to-cart", async () => {
      await record(id, InteractionType.ADD_TO_CART, recommendationId);
      if (!state.cart.includes(id)) state.cart.push(id);
      showStatus(`${offer.title || id} is in your cart`);
      await render();
    }),
    button("Buy", "buy", async () => {
      await record(id, InteractionType.PURCHASE, recommendationId);
      showStatus(`You bought ${offer.title || id}`);
      await render();
    }),
    button("Not interested", "dismiss", async () => {
      await record(id, InteractionType.DISMISS, recommendationId);
      showStatus(`${offer.title || id} will not be offered again`);
      await render();
    }),
  );
  card.append(actions);
  return card;
}

async function offers(title: string, page: string, itemIds: string[] = []): Promise<HTMLElement> {
  const section = h("section", { class: "offers", "data-testid": `offers-${page}` }, h("h2", {}, title));
  const answer = await front.recommendations.recommend({
    customer: customerName(),
    pageSize: 8,
    context: { channel: "web", page, cartItemIds: state.cart, itemIds },
  });
  const previous = new Set(state.lastOffers);
  const grid = h("div", { class: "grid" });
  for (const offer of answer.offers) grid.append(offerCard(offer, answer.recommendationId, previous.size > 0 && !previous.has(offer.item)));
  state.lastOffers = answer.offers.map((o) => o.item);
  await shown(answer.recommendationId, answer.offers);
  if (!answer.offers.length) grid.append(h("p", {}, "No offers."));
  section.append(grid);
  return section;
}

// ---------------------------------------------------------------- pages

async function home(main: HTMLElement): Promise<void> {
  main.append(await offers(state.anonymous ? "Popular right now" : "Picked for you", "home"));
}

async function product(main: HTMLElement, id: string): Promise<void> {
  const item = state.catalog.get(id);
  main.append(
    h(
      "section",
      { class: "product", "data-testid": "product" },
      h("h2", { "data-testid": "product-title" }, item?.title || id),
      h("p", { class: "meta" }, [item?.category, item?.brand, money(item?.price ?? 0)].filter(Boolean).join(" · ")),
      button("Add to cart", "product-add", async () => {
        await record(id, InteractionType.ADD_TO_CART);
        if (!state.cart.includes(id)) state.cart.push(id);
        go({ page: "cart" });
      }),
    ),
  );
  const similar = await front.recommendations.similarItems({ item: `${shop}/items/${id}`, customer: customerName(), pageSize: 4 });
  const row = h("section", { class: "offers", "data-testid": "similar" }, h("h2", {}, "Similar items"));
  const grid = h("div", { class: "grid" });
  for (const offer of similar.offers) grid.append(offerCard(offer, similar.recommendationId, false));
  await shown(similar.recommendationId, similar.offers);
  row.append(grid);
  main.append(row, await offers("You may also like", "product", [id]));
}

async function cart(main: HTMLElement): Promise<void> {
  const list = h("section", { class: "cart", "data-testid": "cart" }, h("h2", {}, "Your cart"));
  if (!state.cart.length) list.append(h("p", {}, "Your cart is empty."));
  for (const id of state.cart) {
    const item = state.catalog.get(id);
    list.append(h("p", { "data-testid": "cart-item" }, `${item?.title || id} ${money(item?.price ?? 0)}`));
  }
  if (state.cart.length)
    list.append(
      button("Check out", "checkout", async () => {
        for (const id of state.cart) await record(id, InteractionType.PURCHASE);
        showStatus(`You bought ${state.cart.length} item(s)`);
        state.cart = [];
        await render();
      }),
    );
  main.append(list, await offers("Goes well with your cart", "cart"));
}

// ---------------------------------------------------------------- profile: preferences, tastes, consent, devices, erasure

async function profile(main: HTMLElement): Promise<void> {
  const { customer } = await back.profiles.getCustomer({ name: customerName() });
  if (!customer) return;
  main.append(preferences(customer), await tastes(), consent(customer), await devices(), erasure());
}

const KINDS: [string, PreferenceKind][] = [
  ["I like the category", PreferenceKind.LIKED_CATEGORY],
  ["I like the brand", PreferenceKind.LIKED_BRAND],
  ["I dislike the category", PreferenceKind.DISLIKED_CATEGORY],
  ["I dislike the brand", PreferenceKind.DISLIKED_BRAND],
];

function preferences(customer: Customer): HTMLElement {
  const box = h("section", { class: "panel", "data-testid": "preferences" }, h("h2", {}, "Your preferences"));
  const list = h("ul", {});
  for (const p of customer.preferences)
    list.append(h("li", { "data-testid": "preference" }, `${KINDS.find(([, k]) => k === p.kind)?.[0] ?? "?"}: ${p.value}`));
  for (const e of customer.exclusions)
    list.append(h("li", { "data-testid": "exclusion" }, `Never show me ${ExclusionKind[e.kind].toLowerCase()} ${e.value}`));
  if (customer.priceRange) list.append(h("li", { "data-testid": "price" }, `Price ${money(customer.priceRange.minPrice)} to ${money(customer.priceRange.maxPrice)}`));
  box.append(list);

  const kind = h("select", { "data-testid": "preference-kind" }) as HTMLSelectElement;
  KINDS.forEach(([label], i) => kind.append(h("option", { value: String(i) }, label)));
  const value = h("input", { "data-testid": "preference-value", placeholder: "Garden, Acme, ..." }) as HTMLInputElement;
  const update = async (mask: string[], change: Pick<Customer, "preferences"> | Pick<Customer, "exclusions"> | Pick<Customer, "priceRange">) => {
    await back.profiles.updateCustomer({ customer: create(CustomerSchema, { ...change, name: customer.name }), updateMask: { paths: mask } });
    showStatus("Saved: your next offers follow it");
    await render();
  };
  box.append(
    h("div", { class: "row" }, kind, value, button("Add", "add-preference", () =>
      update(["preferences"], { preferences: [...customer.preferences, create(PreferenceSchema, { kind: KINDS[Number(kind.value)][1], value: value.value })] }))),
  );
  const exclusionKind = h("select", { "data-testid": "exclusion-kind" }) as HTMLSelectElement;
  for (const [label, k] of [["brand", ExclusionKind.BRAND], ["category", ExclusionKind.CATEGORY]] as const)
    exclusionKind.append(h("option", { value: String(k) }, label));
  const exclusionValue = h("input", { "data-testid": "exclusion-value", placeholder: "a brand or category" }) as HTMLInputElement;
  box.append(
    h("div", { class: "row" }, "Never show me", exclusionKind, exclusionValue, button("Exclude", "add-exclusion", () =>
      update(["exclusions"], { exclusions: [...customer.exclusions, create(ExclusionSchema, { kind: Number(exclusionKind.value), value: exclusionValue.value })] }))),
  );
  const min = h("input", { "data-testid": "price-min", type: "number", placeholder: "min", value: String(customer.priceRange?.minPrice ?? "") }) as HTMLInputElement;
  const max = h("input", { "data-testid": "price-max", type: "number", placeholder: "max", value: String(customer.priceRange?.maxPrice ?? "") }) as HTMLInputElement;
  box.append(
    h("div", { class: "row" }, "Price range", min, max, button("Set", "set-price", () =>
      update(["price_range"], { priceRange: create(PriceRangeSchema, { minPrice: Number(min.value), maxPrice: Number(max.value) }) }))),
  );
  return box;
}

async function tastes(): Promise<HTMLElement> {
  const box = h("section", { class: "panel", "data-testid": "tastes" }, h("h2", {}, "What we think you like"));
  try {
    const answer = await back.profiles.getTastes({ customer: customerName() });
    const list = h("ul", {});
    for (const taste of answer.inferred) {
      const label = `${PreferenceKind[taste.kind].toLowerCase().replace("liked_", "")} ${taste.value}`;
      list.append(
        h("li", { "data-testid": "taste" }, `${label} (${taste.evidence.length} event(s)) `,
          button("Not for me", "correct-taste", async () => {
            await back.profiles.correctTaste({ customer: customerName(), kind: taste.kind, value: taste.value });
            showStatus(`Corrected: ${taste.value} no longer counts`);
            await render();
          })),
      );
    }
    if (!answer.inferred.length) list.append(h("li", {}, "Nothing yet."));
    box.append(list);
  } catch (error) {
    box.append(h("p", { class: "unavailable", "data-testid": "tastes-unavailable" }, describe(error)));
  }
  return box;
}

const PURPOSES: [string, ConsentPurpose][] = [
  ["Personalized offers", ConsentPurpose.PERSONALIZATION],
  ["Use my history to train models", ConsentPurpose.TRAINING],
  ["Link my devices", ConsentPurpose.CROSS_DEVICE_LINKING],
];

function consent(customer: Customer): HTMLElement {
  const box = h("section", { class: "panel", "data-testid": "consent" }, h("h2", {}, "Consent"));
  for (const [label, purpose] of PURPOSES) {
    const current = customer.consents.find((c) => c.purpose === purpose);
    const input = h("input", { type: "checkbox", "data-testid": `consent-${ConsentPurpose[purpose].toLowerCase()}` }) as HTMLInputElement;
    input.checked = current?.granted ?? true;
    input.addEventListener("change", () => {
      back.profiles
        .setConsent({ customer: customerName(), consent: { purpose, granted: input.checked, source: "storefront" } })
        .then(() => {
          showStatus(`${label}: ${input.checked ? "on" : "off"}`);
          return render();
        })
        .catch((error) => {
          input.checked = !input.checked;
          showError(error);
        });
    });
    const since = current?.updateTime ? ` (since ${timestampDate(current.updateTime).toLocaleString()}, ${current.source})` : "";
    box.append(h("label", { class: "row" }, input, ` ${label}${since}`));
  }
  return box;
}

async function devices(): Promise<HTMLElement> {
  const box = h("section", { class: "panel", "data-testid": "devices" }, h("h2", {}, "Your devices"));
  try {
    const links = await back.profiles.listIdentityLinks({ customer: customerName() });
    for (const link of links.links) box.append(h("p", { "data-testid": "device" }, `${itemId(link.linked)} (${link.source})`));
    if (!links.links.length) box.append(h("p", {}, "No other device."));
  } catch (error) {
    box.append(h("p", { class: "unavailable" }, describe(error)));
  }
  box.append(
    button("Link this phone", "link-device", async () => {
      const device = `anon-${crypto.randomUUID().slice(0, 8)}`;
      await back.profiles.linkIdentity({ customer: customerName(), linked: customerName(device), source: "storefront" });
      showStatus(`Linked ${device}`);
      await render();
    }),
  );
  return box;
}

function erasure(): HTMLElement {
  const box = h("section", { class: "panel danger", "data-testid": "erasure" }, h("h2", {}, "Forget me"));
  box.append(
    button("Erase everything about me", "erase", async () => {
      const { receipt } = await back.profiles.eraseCustomer({ name: customerName() });
      const shown = h("dl", { class: "receipt", "data-testid": "receipt" });
      const rows: [string, string][] = [
        ["customer", receipt?.customer ?? ""],
        ["erased at", receipt?.eraseTime ? timestampDate(receipt.eraseTime).toISOString() : ""],
        ["profile removed", String(receipt?.profileRemoved ?? false)],
        ["interactions removed", String(receipt?.interactionsRemoved ?? 0)],
        ["identity links removed", String(receipt?.identityLinksRemoved ?? 0)],
        ["consents removed", String(receipt?.consentsRemoved ?? 0)],
        ["model versions removed", (receipt?.modelVersionsRemoved ?? []).join(", ") || "none"],
        ["model versions pending", (receipt?.modelVersionsPending ?? []).join(", ") || "none"],
      ];
      for (const [k, v] of rows) shown.append(h("dt", {}, k), h("dd", {}, v));
      box.append(h("h3", {}, "Erasure receipt"), shown);
      showStatus("Erased");
    }),
  );
  return box;
}

// ---------------------------------------------------------------- shell

function go(view: View): void {
  const hash = view.page === "product" ? `#product/${view.itemId}` : `#${view.page}`;
  if (location.hash !== hash) location.hash = hash;
  else void render();
}

function parseView(): View {
  const [page, arg] = location.hash.slice(1).split("/");
  if (page === "product" && arg) return { page: "product", itemId: arg };
  if (page === "cart" || page === "profile") return { page };
  return { page: "home" };
}

async function login(id: string): Promise<void> {
  const anonymousId = state.anonymous ? state.customerId : "";
  state.customerId = id;
  state.anonymous = id.startsWith("anon-");
  sessionStorage.setItem("kosmos.customer", id);
  if (anonymousId && !state.anonymous) {
    // Logging in after browsing anonymously: what this browser did counts for the customer.
    try {
      await back.profiles.linkIdentity({ customer: customerName(id), linked: customerName(anonymousId), source: "login" });
      showStatus(`Welcome back: your anonymous browsing (${anonymousId}) is linked to ${id}`);
    } catch (error) {
      showError(error);
    }
  }
  state.lastOffers = [];
  await render();
}

async function browseAnonymously(): Promise<void> {
  const id = `anon-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await back.profiles.createCustomer({ parent: shop, customerId: id });
  } catch (error) {
    // A cluster that creates anonymous profiles on first use has it already.
    if (ConnectError.from(error).code !== Code.AlreadyExists) throw error;
  }
  await login(id);
}

async function header(): Promise<HTMLElement> {
  const bar = h("header", {});
  bar.append(h("a", { href: "#home", class: "brand" }, `Kosmos demo shop`));
  const nav = h("nav", {});
  nav.append(
    h("a", { href: "#home", "data-testid": "nav-home" }, "Home"),
    h("a", { href: "#cart", "data-testid": "nav-cart" }, `Cart (${state.cart.length})`),
    h("a", { href: "#profile", "data-testid": "nav-profile" }, "My data"),
  );
  const picker = h("select", { "data-testid": "customer-picker" }) as HTMLSelectElement;
  picker.append(h("option", { value: "" }, "Log in as ..."));
  const page = await back.profiles.listCustomers({ parent: shop, pageSize: 25 });
  for (const c of page.customers) {
    const id = itemId(c.name);
    if (!id.startsWith("anon-")) picker.append(h("option", { value: id }, id));
  }
  picker.value = state.anonymous ? "" : state.customerId;
  picker.addEventListener("change", () => void login(picker.value).catch(showError));
  const who = h("span", { class: "who", "data-testid": "who" }, state.anonymous ? `anonymous (${state.customerId})` : state.customerId);
  bar.append(nav, who, picker, button("Browse anonymously", "anonymous", browseAnonymously));
  return bar;
}

async function render(): Promise<void> {
  const root = document.getElementById("app")!;
  const main = h("main", {});
  try {
    if (!state.customerId) {
      root.replaceChildren(await header(), main);
      main.append(h("p", { "data-testid": "pick" }, "Pick a customer above, or browse anonymously."));
      return;
    }
    state.view = parseView();
    if (state.view.page === "home") await home(main);
    else if (state.view.page === "product") await product(main, state.view.itemId);
    else if (state.view.page === "cart") await cart(main);
    else await profile(main);
    root.replaceChildren(await header(), main);
    document.body.dataset.ready = `${state.view.page}:${Date.now()}`;
  } catch (error) {
    root.replaceChildren(await header().catch(() => h("header", {})), main);
    showError(error);
  }
}

async function start(): Promise<void> {
  if (!sessionStorage.getItem("kosmos.storefront") || !sessionStorage.getItem("kosmos.admin")) {
    document.getElementById("app")!.append(
      h("p", { "data-testid": "keys-missing" }, "Open the address make run printed: it carries the storefront and admin keys after the #."),
    );
    return;
  }
  if (params.has("storefront")) history.replaceState(null, "", location.pathname + "#home");
  await loadCatalog();
  const saved = sessionStorage.getItem("kosmos.customer");
  if (saved) {
    state.customerId = saved;
    state.anonymous = saved.startsWith("anon-");
  }
  window.addEventListener("hashchange", () => void render());
  await render();
}

void start().catch(showError);
