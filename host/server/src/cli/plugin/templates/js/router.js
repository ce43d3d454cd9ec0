// {{name}}: a weft router. Sends each request to the healthy engine with the
// least work (queued + running), preferring one that caches the prompt's prefix.
// @ts-check
import { Reject } from "./weft-plugin.js";
/** @typedef {import("./weft-plugin.js").Router} Router */

/** @implements {Router} */
export default class Plugin {
  static metadata = { name: "{{name}}", version: "0.1.0", description: "least work, prefix-aware" };

  /** @param {import("./weft-plugin.js").Config} config */
  constructor(config) {
    // Tokens of cached prefix worth one request of queue.
    this.prefixWeight = Number(config.prefix_weight ?? "256");
  }

  /**
   * @param {import("./weft-plugin.js").RouteRequest} request
   * @param {import("./weft-plugin.js").Backend[]} candidates
   */
  route(request, candidates) {
    const healthy = candidates.filter((c) => c.healthy);
    if (healthy.length === 0) return new Reject(503, "no healthy engine");
    const cost = (/** @type {import("./weft-plugin.js").Backend} */ c) =>
      c.queueDepth + c.running - c.cachedPrefixTokens / this.prefixWeight;
    return healthy.reduce((a, b) => (cost(b) < cost(a) ? b : a)).id;
  }
}
