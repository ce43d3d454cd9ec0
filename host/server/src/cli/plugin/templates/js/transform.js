// {{name}}: a weft transform. Refuses requests that mention a blocked word
// (config `blocked`, comma-separated) and tags the answer's end.
// @ts-check
import { Rejected, ResponseFilter } from "./weft-plugin.js";
/** @typedef {import("./weft-plugin.js").Transform} Transform */

class Tag extends ResponseFilter {
  /** @param {string} tag */
  constructor(tag) {
    super();
    this.tag = tag;
  }
  onEnd() {
    return this.tag;
  }
}

/** @implements {Transform} */
export default class Plugin {
  static metadata = { name: "{{name}}", version: "0.1.0", description: "refuses blocked words" };

  /** @param {import("./weft-plugin.js").Config} config */
  constructor(config) {
    this.blocked = (config.blocked ?? "").split(",").map((w) => w.trim().toLowerCase()).filter(Boolean);
    this.tag = config.tag ?? "";
  }

  /** @param {import("./weft-plugin.js").Request} request */
  onRequest(request) {
    const texts = (request.messages ?? []).map((m) => m.content).concat(request.prompt ?? "");
    for (const word of this.blocked) {
      if (texts.some((t) => t.toLowerCase().includes(word))) throw new Rejected(400, `requests may not mention '${word}'`);
    }
    return request;
  }

  /** @param {import("./weft-plugin.js").Request} request */
  responseFilter(request) {
    return new Tag(this.tag);
  }
}
