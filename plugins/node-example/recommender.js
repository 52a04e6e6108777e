'use strict';
/**
 * The model: "customers who bought this also bought", with a popularity fallback.
 *
 * Two items are similar when the same customers interacted with both (cosine over the sets of
 * customers). A customer's score for an item sums, over the items in their history, how similar
 * it is to each, weighted by how strongly they interacted. When that gives fewer than k items,
 * the most popular ones fill the list. Items are numbered in the order they are first seen
 * (the catalog first), and that order breaks ties, so the same data always gives the same
 * answer.
 *
 * This file knows nothing of gRPC or shops: server.js keeps one instance per shop. Replace it
 * with your own model and keep server.js.
 * Node runs one callback at a time, so partialFit never races a recommend.
 */

const REASON_TOGETHER = 'Often bought together with items you chose';
const REASON_POPULAR = 'Popular with shoppers right now';
const REASON_NEW = 'New to discover';

/** Items per customer that count for co-occurrence: keeps fitting linear for heavy users. */
const MAX_PAIRED_ITEMS = 200;

/** Asked before the shop's first fit: the server answers FAILED_PRECONDITION. */
class NotFitted extends Error {}

/** A bad request: the server answers INVALID_ARGUMENT naming the field. */
class InvalidArgument extends Error {
  constructor(field, message) {
    super(`${field}: ${message}`);
    this.field = field;
  }
}

class CoOccurrence {
  constructor() {
    this.items = []; // number → item id
    this.index = new Map(); // item id → number
    this.popularity = []; // number → summed interaction weight
    this.buyers = []; // number → customers with a positive interaction
    this.together = []; // number → Map(other number → customers who have both)
    this.history = new Map(); // customer id → Map(number → summed weight), weight > 0 only
    this.seen = new Map(); // customer id → Set(item id), every interaction (dismissals too)
    this._byPopularity = null; // cached ranking, dropped when popularity changes
  }

  item(itemId) {
    let n = this.index.get(itemId);
    if (n === undefined) {
      n = this.items.length;
      this.items.push(itemId);
      this.index.set(itemId, n);
      this.popularity.push(0);
      this.buyers.push(0);
      this.together.push(new Map());
    }
    return n;
  }

  /** Folds in one interaction; fit and partialFit both come here. */
  add(customerId, itemId, weight) {
    if (!customerId || !itemId) return;
    let seen = this.seen.get(customerId);
    if (!seen) this.seen.set(customerId, (seen = new Set()));
    seen.add(itemId);
    const n = this.item(itemId);
    if (!(weight > 0)) return; // A dismissal (weight 0) teaches co-occurrence nothing.
    this.popularity[n] += weight;
    this._byPopularity = null;
    let mine = this.history.get(customerId);
    if (!mine) this.history.set(customerId, (mine = new Map()));
    const before = mine.get(n);
    mine.set(n, (before || 0) + weight);
    if (before !== undefined) return; // Only a customer's first touch of an item pairs it.
    this.buyers[n] += 1;
    if (mine.size > MAX_PAIRED_ITEMS) return;
    for (const m of mine.keys()) {
      if (m === n) continue;
      this.together[n].set(m, (this.together[n].get(m) || 0) + 1);
      this.together[m].set(n, (this.together[m].get(n) || 0) + 1);
    }
  }

  similarity(n, m, count) {
    return count / Math.sqrt(this.buyers[n] * this.buyers[m]);
  }

  /** The customer's items → strength (log-damped), from the fit and from the request. */
  strengths(customerId, recent) {
    const result = new Map();
    for (const [n, w] of this.history.get(customerId) || []) result.set(n, Math.log1p(w));
    const fromRequest = new Map();
    for (const i of recent) {
      const n = this.index.get(i.item_id);
      if (n !== undefined && i.weight > 0) fromRequest.set(n, (fromRequest.get(n) || 0) + i.weight);
    }
    // The request repeats interactions the fit already saw: take the stronger, not the sum.
    for (const [n, w] of fromRequest) result.set(n, Math.max(result.get(n) || 0, Math.log1p(w)));
    return result;
  }

  /** Items by popularity, best first, ties by number; computed once per model version. */
  byPopularity() {
    if (!this._byPopularity) {
      this._byPopularity = this.items
        .map((_, n) => n)
        .sort((a, b) => this.popularity[b] - this.popularity[a] || a - b);
    }
    return this._byPopularity;
  }

  recommend({ customerId, k, exclude, filterAlreadySeen, recent }) {
    const banned = new Set(exclude);
    if (filterAlreadySeen) {
      for (const id of this.seen.get(customerId) || []) banned.add(id);
      for (const i of recent) banned.add(i.item_id);
    }
    const scores = new Map();
    for (const [n, strength] of this.strengths(customerId, recent)) {
      for (const [m, count] of this.together[n]) {
        if (banned.has(this.items[m])) continue;
        scores.set(m, (scores.get(m) || 0) + strength * this.similarity(n, m, count));
      }
    }
    const ranked = [...scores].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, k);
    // Co-occurrence scores land in (1, 2] and popularity in [0, 1]: one descending list.
    const top = ranked.length ? ranked[0][1] : 1;
    const result = ranked.map(([m, s]) => ({
      item_id: this.items[m],
      score: 1 + s / top,
      reason: REASON_TOGETHER,
    }));
    const chosen = new Set(ranked.map(([m]) => m));
    const best = this.popularity[this.byPopularity()[0]] || 1;
    for (const m of this.byPopularity()) {
      if (result.length >= k) break;
      if (chosen.has(m) || banned.has(this.items[m])) continue;
      const p = this.popularity[m] / best;
      result.push({ item_id: this.items[m], score: p, reason: p > 0 ? REASON_POPULAR : REASON_NEW });
    }
    return result;
  }

  similarItems({ itemId, k, exclude }) {
    const n = this.index.get(itemId);
    if (n === undefined) return [];
    const banned = new Set(exclude);
    return [...this.together[n]]
      .filter(([m]) => !banned.has(this.items[m]))
      .map(([m, count]) => [m, this.similarity(n, m, count)])
      .sort((a, b) => b[1] - a[1] || a[0] - b[0])
      .slice(0, k)
      .map(([m, s]) => ({ item_id: this.items[m], score: s, reason: 'Often bought together' }));
  }

  /** How much each of the customer's items adds to ``itemId``'s score, largest first. */
  explain({ customerId, itemId, recent }) {
    const target = this.index.get(itemId);
    if (target === undefined) return [];
    const result = [];
    for (const [n, strength] of this.strengths(customerId, recent)) {
      const count = this.together[n].get(target);
      if (count) result.push({ item_id: this.items[n], weight: strength * this.similarity(n, target, count) });
    }
    return result.sort((a, b) => b.weight - a.weight || (a.item_id < b.item_id ? -1 : 1));
  }
}

module.exports = { CoOccurrence, InvalidArgument, NotFitted, REASON_NEW, REASON_POPULAR, REASON_TOGETHER };
