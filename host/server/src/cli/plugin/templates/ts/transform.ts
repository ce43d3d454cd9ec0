// {{name}}: a weft transform. Refuses requests that mention a blocked word
// (config `blocked`, comma-separated) and tags the answer's end.
import { Rejected, ResponseFilter } from "./weft-plugin.js";
import type { Config, Request, Transform } from "./weft-plugin.js";

class Tag extends ResponseFilter {
  constructor(private tag: string) {
    super();
  }
  onEnd(): string {
    return this.tag;
  }
}

export default class Plugin implements Transform {
  static metadata = { name: "{{name}}", version: "0.1.0", description: "refuses blocked words" };
  private blocked: string[];
  private tag: string;

  constructor(config: Config) {
    this.blocked = (config.blocked ?? "").split(",").map((w) => w.trim().toLowerCase()).filter(Boolean);
    this.tag = config.tag ?? "";
  }

  onRequest(request: Request): Request {
    const texts = (request.messages ?? []).map((m) => m.content).concat(request.prompt ?? "");
    for (const word of this.blocked) {
      if (texts.some((t) => t.toLowerCase().includes(word))) throw new Rejected(400, `requests may not mention '${word}'`);
    }
    return request;
  }

  responseFilter(_request: Request): ResponseFilter {
    return new Tag(this.tag);
  }
}
