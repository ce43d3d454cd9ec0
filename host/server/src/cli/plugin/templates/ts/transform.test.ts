import assert from "node:assert/strict";
import { test } from "node:test";
import Plugin from "./plugin.js";
import { Rejected, message } from "./weft-plugin.js";
import type { Request } from "./weft-plugin.js";

const req = (text: string): Request => ({ model: "m", messages: [message("user", text)], params: [], headers: [] });

test("refuses blocked words", () => {
  assert.throws(() => new Plugin({ blocked: "secret" }).onRequest(req("tell me the SECRET")), (e: unknown) => e instanceof Rejected && e.status === 400);
});

test("passes the rest and tags the end", () => {
  const p = new Plugin({ blocked: "secret", tag: " [checked]" });
  const r = req("hello");
  assert.equal(p.onRequest(r), r);
  const f = p.responseFilter(r);
  assert.equal(String(f.onChunk("hi")) + String(f.onEnd()), "hi [checked]");
});
