// {{name}}: a weft sampler. Samples as the request asks, but never hotter than
// config `max_temperature`, and never picks a banned token id (config
// `banned`, comma-separated ids).
// @ts-check
import { Plan, PluginError } from "./weft-plugin.js";
/** @typedef {import("./weft-plugin.js").Sampler} Sampler */
/** @typedef {import("./weft-plugin.js").Session} Session */

/** @implements {Session} */
class Capped {
  /**
   * @param {import("./weft-plugin.js").SamplingParams} params
   * @param {number} cap
   * @param {number[]} banned
   */
  constructor(params, cap, banned) {
    this.params = params;
    this.cap = cap;
    this.banned = banned;
  }
  /** @param {import("./weft-plugin.js").Candidate[]} candidates */
  step(candidates) {
    const plan = Plan.fromParams(this.params);
    plan.temperature = Math.min(plan.temperature, this.cap);
    plan.banned = [...this.banned];
    return plan;
  }
}

/** @implements {Sampler} */
export default class Plugin {
  static metadata = { name: "{{name}}", version: "0.1.0", description: "caps temperature, bans ids" };
  static capabilities = { topK: 8 };

  /** @param {import("./weft-plugin.js").Config} config */
  constructor(config) {
    this.cap = Number(config.max_temperature ?? "0.7");
    this.banned = (config.banned ?? "").split(",").filter((t) => t.trim()).map(Number);
    if (Number.isNaN(this.cap) || this.banned.some((t) => !Number.isInteger(t) || t < 0)) {
      throw new PluginError("max_temperature must be a number and banned a list of token ids");
    }
  }

  /**
   * @param {import("./weft-plugin.js").SamplingParams} params
   * @param {string} args
   * @param {Uint32Array} prompt
   */
  session(params, args, prompt) {
    return new Capped(params, this.cap, this.banned);
  }
}
