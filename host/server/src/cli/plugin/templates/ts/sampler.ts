// {{name}}: a weft sampler. Samples as the request asks, but never hotter than
// config `max_temperature`, and never picks a banned token id (config
// `banned`, comma-separated ids).
import { Plan, PluginError } from "./weft-plugin.js";
import type { Candidate, Config, Sampler, SamplingParams, Session } from "./weft-plugin.js";

class Capped implements Session {
  constructor(
    private params: SamplingParams,
    private cap: number,
    private banned: number[],
  ) {}

  step(_candidates: Candidate[]): Plan {
    const plan = Plan.fromParams(this.params);
    plan.temperature = Math.min(plan.temperature, this.cap);
    plan.banned = [...this.banned];
    return plan;
  }
}

export default class Plugin implements Sampler {
  static metadata = { name: "{{name}}", version: "0.1.0", description: "caps temperature, bans ids" };
  static capabilities = { topK: 8 };
  private cap: number;
  private banned: number[];

  constructor(config: Config) {
    this.cap = Number(config.max_temperature ?? "0.7");
    this.banned = (config.banned ?? "").split(",").filter((t) => t.trim()).map(Number);
    if (Number.isNaN(this.cap) || this.banned.some((t) => !Number.isInteger(t) || t < 0)) {
      throw new PluginError("max_temperature must be a number and banned a list of token ids");
    }
  }

  session(params: SamplingParams, _args: string, _prompt: Uint32Array): Session {
    return new Capped(params, this.cap, this.banned);
  }
}
