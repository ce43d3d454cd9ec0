import assert from "node:assert/strict";
import { test } from "node:test";
import Plugin from "./plugin.js";
import { Reject } from "./weft-plugin.js";
import type { Backend, RouteRequest } from "./weft-plugin.js";

const backend = (id: string, load: number, cached = 0, healthy = true): Backend => ({ id, model: "m", queueDepth: load, running: 0, freeKvFraction: 1, cachedPrefixTokens: cached, healthy });
const req: RouteRequest = { tenant: "", model: "m", promptTokens: 100, prefixHashes: [] };

test("least loaded healthy engine", () => {
  assert.equal(new Plugin({}).route(req, [backend("a", 3), backend("b", 1), backend("c", 0, 0, false)]), "b");
});

test("a cached prefix outweighs a short queue", () => {
  assert.equal(new Plugin({}).route(req, [backend("a", 0), backend("b", 1, 512)]), "b");
});

test("nothing healthy is a 503", () => {
  const r = new Plugin({}).route(req, [backend("a", 0, 0, false)]);
  assert.ok(r instanceof Reject);
  assert.equal(r.status, 503);
});
