// Unit tests on Node: `weft plugin test` (or `node --test`).
import assert from "node:assert/strict";
import { test } from "node:test";
import WeightedAB from "./plugin.js";
import { PluginError, Reject } from "./weft-plugin.js";

const backend = (id, healthy = true) => ({ id, model: "m", queueDepth: 0, running: 0, freeKvFraction: 1, cachedPrefixTokens: 0, healthy });
const req = { tenant: "", model: "m", promptTokens: 10, prefixHashes: [] };

test("splits exactly at the configured ratio", () => {
  const r = new WeightedAB({ weights: '{"a": 3, "b": 1}' });
  const counts = { a: 0, b: 0 };
  for (let i = 0; i < 400; i++) counts[r.route(req, [backend("a"), backend("b")])]++;
  assert.deepEqual(counts, { a: 300, b: 100 });
});

test("an unhealthy engine's share goes to the others", () => {
  const r = new WeightedAB({ weights: '{"a": 3, "b": 1}' });
  for (let i = 0; i < 10; i++) assert.equal(r.route(req, [backend("a", false), backend("b")]), "b");
});

test("no healthy weighted engine is a 503", () => {
  const r = new WeightedAB({ weights: '{"a": 1}' });
  const out = r.route(req, [backend("b")]);
  assert.ok(out instanceof Reject);
  assert.equal(out.status, 503);
});

test("bad weights are refused", () => {
  assert.throws(() => new WeightedAB({ weights: "{" }), PluginError);
  assert.throws(() => new WeightedAB({ weights: '{"a": -1}' }), PluginError);
});
