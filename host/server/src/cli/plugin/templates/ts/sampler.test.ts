import assert from "node:assert/strict";
import { test } from "node:test";
import Plugin from "./plugin.js";
import { Plan, PluginError } from "./weft-plugin.js";
import type { SamplingParams } from "./weft-plugin.js";

const params = (t: number): SamplingParams => ({ temperature: t, topP: 1, topK: 0, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, logitBias: [], maxTokens: 8 });

test("caps temperature and bans", () => {
  const plan = new Plugin({ max_temperature: "0.5", banned: "7, 9" }).session(params(1.2), "", new Uint32Array()).step([]);
  assert.ok(plan instanceof Plan);
  assert.deepEqual([plan.temperature, plan.banned], [0.5, [7, 9]]);
});

test("cooler requests stay cool", () => {
  const plan = new Plugin({}).session(params(0.2), "", new Uint32Array()).step([]) as Plan;
  assert.equal(plan.temperature, 0.2);
});

test("bad config is refused", () => {
  assert.throws(() => new Plugin({ banned: "x" }), PluginError);
});
