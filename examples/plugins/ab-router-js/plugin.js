// A weighted A/B router: splits traffic between engines at configured
// weights, exactly (smooth weighted round-robin, as nginx does), not just on
// average. Unhealthy engines are skipped and their share goes to the others.
//
// Configuration (weft.toml):
//   weights = '{"engine-0": 3, "engine-1": 1}'
// Engines missing from `weights` get no traffic while a weighted one is healthy.

// @ts-check
import { PluginError, Reject, counterAdd, log } from "./weft-plugin.js";
/** @typedef {import("./weft-plugin.js").Router} Router */

/** @implements {Router} */
export default class WeightedAB {
  static metadata = { name: "ab-router-js", version: "0.1.0", description: "weighted A/B split between engines" };

  /** @param {import("./weft-plugin.js").Config} config */
  constructor(config) {
    let weights;
    try {
      weights = JSON.parse(config.weights ?? "{}");
    } catch (e) {
      throw new PluginError(`\`weights\` is not JSON: ${e instanceof Error ? e.message : e}`);
    }
    /** @type {Map<string, number>} */
    this.weights = new Map();
    for (const [id, w] of Object.entries(weights)) {
      if (typeof w !== "number" || !(w >= 0)) throw new PluginError(`weight of ${id} must be a number >= 0`);
      this.weights.set(id, w);
    }
    /** @type {Map<string, number>} */
    this.current = new Map();
    log("info", `weights ${JSON.stringify(Object.fromEntries(this.weights))}`);
  }

  /**
   * @param {import("./weft-plugin.js").RouteRequest} request
   * @param {import("./weft-plugin.js").Backend[]} candidates
   */
  route(request, candidates) {
    const live = candidates.filter((c) => c.healthy && (this.weights.get(c.id) ?? 0) > 0);
    if (live.length === 0) {
      if (this.weights.size === 0 && candidates.length > 0) return candidates[0].id;
      return new Reject(503, "no weighted engine is healthy");
    }
    // Smooth weighted round-robin: every pick adds each weight to its
    // engine's credit and takes the total from the winner.
    let total = 0;
    let best = live[0];
    for (const c of live) {
      const w = this.weights.get(c.id) ?? 0;
      total += w;
      const credit = (this.current.get(c.id) ?? 0) + w;
      this.current.set(c.id, credit);
      if (credit > (this.current.get(best.id) ?? 0)) best = c;
    }
    this.current.set(best.id, (this.current.get(best.id) ?? 0) - total);
    counterAdd(`routed_${best.id.replace(/[^A-Za-z0-9_]/g, "_")}`);
    return best.id;
  }
}
