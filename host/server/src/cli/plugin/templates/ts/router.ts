// {{name}}: a weft router. Sends each request to the healthy engine with the
// least work (queued + running), preferring one that caches the prompt's prefix.
import { Reject } from "./weft-plugin.js";
import type { Backend, Config, RouteRequest, Router } from "./weft-plugin.js";

export default class Plugin implements Router {
  static metadata = { name: "{{name}}", version: "0.1.0", description: "least work, prefix-aware" };
  /** Tokens of cached prefix worth one request of queue. */
  private prefixWeight: number;

  constructor(config: Config) {
    this.prefixWeight = Number(config.prefix_weight ?? "256");
  }

  route(_request: RouteRequest, candidates: Backend[]): string | Reject {
    const healthy = candidates.filter((c) => c.healthy);
    if (healthy.length === 0) return new Reject(503, "no healthy engine");
    const cost = (c: Backend) => c.queueDepth + c.running - c.cachedPrefixTokens / this.prefixWeight;
    return healthy.reduce((a, b) => (cost(b) < cost(a) ? b : a)).id;
  }
}
