// weft-plugin: write weft plugins in JavaScript or TypeScript.
//
// Written into your project by `weft plugin new` and refreshed by
// `weft plugin build`; do not edit (your changes would be overwritten).
// Types: weft-plugin.d.ts beside this file.
//
// Your module (plugin.js or plugin.ts) default-exports a class for one role;
// `weft plugin build` generates the component's entry, which wraps it with
// the matching export function below and hands it to componentize-js. The
// class's constructor runs once per component instance with the plugin's
// configuration (an object of strings); throw to refuse it. Every later call
// is a method on that same object: keep state on `this`.

let host = null;

/** Called by the generated entry with the component's host imports. */
export function installHost(h) {
  host = h;
}

/** A structured log line attributed to this plugin (console.error outside a component). */
export function log(level, message) {
  if (host) host.log(level, String(message));
  else console.error(`[${level}] ${message}`);
}

/** Adds to the counter `<plugin>_<name>` on the host's /metrics. */
export function counterAdd(name, value = 1) {
  if (host) host.counterAdd(name, BigInt(value));
}

/** Records into the histogram `<plugin>_<name>` on the host's /metrics. */
export function histogramRecord(name, value) {
  if (host) host.histogramRecord(name, value);
}

/** Thrown from a constructor, sampler or tokenizer method: fails that call with the message. */
export class PluginError extends Error {}

/** Thrown from a transform's onRequest to refuse the request with an HTTP status. */
export class Rejected extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** What a router's route returns to refuse a request. */
export class Reject {
  constructor(status, reason) {
    this.status = status;
    this.reason = reason;
  }
}

/** A response filter's tool call output. */
export class Call {
  constructor(id, name, args) {
    this.id = id;
    this.name = name;
    this.arguments = args;
  }
}

/** A response filter that passes text through; extend it and override onChunk/onEnd. */
export class ResponseFilter {
  onChunk(text) {
    return text;
  }
  onEnd() {
    return "";
  }
}

/** Host-side sampling for one step (the contract's `plan`). */
export class Plan {
  constructor(p = {}) {
    this.temperature = p.temperature ?? 1.0;
    this.topK = p.topK ?? 0;
    this.topP = p.topP ?? 1.0;
    this.minP = p.minP ?? 0.0;
    this.repetitionPenalty = p.repetitionPenalty ?? 1.0;
    this.presencePenalty = p.presencePenalty ?? 0.0;
    this.frequencyPenalty = p.frequencyPenalty ?? 0.0;
    this.logitBias = p.logitBias ?? [];
    this.allowed = p.allowed;
    this.banned = p.banned ?? [];
  }
  /** The plan that samples exactly as the request's parameters ask. */
  static fromParams(params) {
    return new Plan(params);
  }
}

/** A message record, for transforms that add messages. */
export function message(role, content) {
  return { role, content, name: undefined, toolCalls: [], toolCallId: undefined };
}

/** The JSON text of request parameter `name`, or undefined. */
export function param(request, name) {
  const p = request.params.find(([k]) => k === name);
  return p && p[1];
}

/** The value of exposed header `name` (lower-case), or undefined. */
export function header(request, name) {
  const h = request.headers.find(([k]) => k === name);
  return h && h[1];
}

/**
 * What to throw from an export whose result has an error case, for an
 * exception that is a fault of the plugin rather than its answer: a value the
 * component cannot pass back as that error, so the call traps (as an uncaught
 * exception does in Python and a panic in Rust) and the host counts a fault.
 */
function fault(e) {
  console.error(e instanceof Error ? (e.stack ?? `${e.name}: ${e.message}`) : String(e));
  return { status: Symbol("fault"), message: Symbol("fault"), reason: Symbol("fault") };
}

function fail(e) {
  // The contract's `result<_, string>`: the message reaches the operator.
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

function common(Plugin, state) {
  return {
    metadata() {
      const m = Plugin.metadata ?? {};
      return { name: m.name ?? Plugin.name, version: m.version ?? "0.1.0", description: m.description ?? "" };
    },
    init(config) {
      try {
        state.instance = new Plugin(Object.fromEntries(config));
      } catch (e) {
        throw fail(e);
      }
    },
  };
}

function outputs(o) {
  const list = Array.isArray(o) ? o : [o];
  const out = [];
  for (const x of list) {
    if (typeof x === "string") {
      if (x) out.push({ tag: "text", val: x });
    } else if (x instanceof Call || (x && typeof x.name === "string" && typeof x.arguments === "string")) {
      out.push({ tag: "tool-call", val: { id: x.id, name: x.name, arguments: x.arguments } });
    } else if (x !== undefined && x !== null) {
      throw new TypeError(`a response filter returned ${typeof x}, not a string or Call`);
    }
  }
  return out;
}

/** The transform world's exports around a transform class. */
export function exportTransform(Plugin) {
  const state = {};
  class ResponseStream {
    constructor(request) {
      const me = state.instance;
      this.filter = me.responseFilter ? me.responseFilter(request) : new ResponseFilter();
    }
    onChunk(text) {
      return outputs(this.filter.onChunk(text));
    }
    onEnd() {
      return outputs(this.filter.onEnd ? this.filter.onEnd() : "");
    }
  }
  return {
    ...common(Plugin, state),
    transform: {
      onRequest(request) {
        try {
          return state.instance.onRequest ? state.instance.onRequest(request) : request;
        } catch (e) {
          if (e instanceof Rejected) throw { status: e.status, message: e.message };
          throw fault(e);
        }
      },
      ResponseStream,
    },
  };
}

/** The router world's exports around a router class. */
export function exportRouter(Plugin) {
  const state = {};
  return {
    ...common(Plugin, state),
    router: {
      route(request, candidates) {
        const r = state.instance.route(request, candidates);
        if (r instanceof Reject) return { tag: "reject", val: { status: r.status, reason: r.reason } };
        if (typeof r === "string") return { tag: "backend", val: r };
        throw new TypeError(`route returned ${typeof r}, not a backend id or Reject`);
      },
    },
  };
}

function decision(d) {
  if (typeof d === "number") return { tag: "token", val: d };
  if (d instanceof Plan) return { tag: "plan", val: { ...d } };
  throw new TypeError(`a session step returned ${typeof d}, not a token id or Plan`);
}

/** Runs a sampler or tokenizer method: a PluginError is the call's error, anything else a fault. */
function call(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof PluginError) throw e.message;
    throw fault(e);
  }
}

/** The sampler world's exports around a sampler class (`session(params, args, prompt)` opens a session). */
export function exportSampler(Plugin) {
  const state = {};
  class Session {
    static create(params, args, prompt) {
      const s = new Session();
      s.inner = call(() => state.instance.session(params, args, prompt));
      return s;
    }
    step(candidates) {
      return decision(call(() => this.inner.step(candidates)));
    }
    stepFull(logits) {
      return decision(call(() => this.inner.stepFull(logits)));
    }
    accept(token) {
      const stop = call(() => (this.inner.accept ? this.inner.accept(token) : false));
      return { tag: stop ? "stop" : "continue" };
    }
  }
  return {
    ...common(Plugin, state),
    sampler: {
      capabilities() {
        const c = Plugin.capabilities ?? {};
        return { topK: c.topK ?? 64, needsFullLogits: c.needsFullLogits ?? false };
      },
      Session,
    },
  };
}

/** The tokenizer world's exports around a tokenizer class (`load(source)` returns a loaded vocabulary). */
export function exportTokenizer(Plugin) {
  const state = {};
  class Decoder {
    constructor(inner, skip) {
      this.inner = inner;
      this.skip = skip;
      this.ids = [];
      this.sent = 0;
    }
    push(id) {
      this.ids.push(id);
      const text = this.inner.decode(this.ids, this.skip);
      if (text.endsWith("\ufffd")) return "";
      const out = text.slice(this.sent);
      this.sent = text.length;
      return out;
    }
    finish() {
      const text = this.inner.decode(this.ids, this.skip);
      const out = text.slice(this.sent);
      this.sent = text.length;
      return out;
    }
  }
  class Tokenizer {
    static load(source) {
      const t = new Tokenizer();
      t.inner = call(() => state.instance.load(source));
      return t;
    }
    encode(text, addSpecial) {
      return new Uint32Array(call(() => this.inner.encode(text, addSpecial)));
    }
    decode(ids, skipSpecial) {
      return call(() => this.inner.decode(Array.from(ids), skipSpecial));
    }
    vocabSize() {
      return this.inner.vocabSize();
    }
    specialTokens() {
      return (this.inner.specialTokens ? this.inner.specialTokens() : []).map(([id, text, kind]) => ({ id, text, kind }));
    }
    tokenBytes(ids) {
      return Array.from(ids).map((i) => new Uint8Array(this.inner.tokenBytes([i])[0]));
    }
    decoder(skipSpecial) {
      return new Decoder(this.inner, skipSpecial);
    }
  }
  return { ...common(Plugin, state), tokenizer: { Tokenizer, Decoder } };
}
