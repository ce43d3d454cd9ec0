import assert from "node:assert/strict";
import { test } from "node:test";
import { Vocab, byteChars } from "./plugin.js";

test("round-trips any text, longest token first", () => {
  const tokens = [...byteChars(), "he", "hel", "hello", "<eos>"];
  const v = new Vocab(tokens, new Map([[tokens.length - 1, "eos"]]));
  const ids = v.encode("hello, héllo", false);
  assert.equal(ids[0], 258);
  assert.equal(v.decode(ids, true), "hello, héllo");
  assert.equal(v.decode([...ids, tokens.length - 1], false), "hello, héllo<eos>");
});
