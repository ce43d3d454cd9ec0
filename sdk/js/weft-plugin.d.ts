// Types of weft-plugin.js: the contract weft:plugin@0.3.0 as JavaScript sees it
// (WIT names in camelCase; u64 as bigint; lists of u32 may arrive as Uint32Array).

export type Config = Record<string, string>;
export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";

/** Static `metadata` of a plugin class. */
export interface Metadata {
  name?: string;
  version?: string;
  description?: string;
}

export function log(level: LogLevel, message: string): void;
export function counterAdd(name: string, value?: number): void;
export function histogramRecord(name: string, value: number): void;

export class PluginError extends Error {}

// ---- transform ---------------------------------------------------------

export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

export interface Message {
  role: string;
  content: string;
  name?: string;
  toolCalls: ToolCall[];
  toolCallId?: string;
}

export interface Request {
  model: string;
  messages?: Message[];
  prompt?: string;
  /** Parameters by name, values as JSON text. */
  params: [string, string][];
  /** Exposed headers, lower-case names. */
  headers: [string, string][];
  /** A decoding constraint for the structured sampler, as JSON text. */
  constraint?: string;
}

export class Rejected extends Error {
  constructor(status: number, message: string);
  status: number;
}

export class Call implements ToolCall {
  constructor(id: string, name: string, args: string);
  id: string;
  name: string;
  arguments: string;
}

export type Output = string | Call;

export class ResponseFilter {
  onChunk(text: string): Output | Output[];
  onEnd(): Output | Output[];
}

export interface Transform {
  /** Returns the (possibly changed) request, or throws Rejected. */
  onRequest?(request: Request): Request;
  /** The filter for one response. */
  responseFilter?(request: Request): ResponseFilter;
}

export interface TransformClass {
  new (config: Config): Transform;
  metadata?: Metadata;
}

export function message(role: string, content: string): Message;
export function param(request: Request, name: string): string | undefined;
export function header(request: Request, name: string): string | undefined;

// ---- router ------------------------------------------------------------

export interface RouteRequest {
  tenant: string;
  model: string;
  promptTokens: number;
  /** Hashes of the prompt's full KV blocks, in order. */
  prefixHashes: BigUint64Array | bigint[];
}

export interface Backend {
  id: string;
  model: string;
  queueDepth: number;
  running: number;
  /** Fraction of KV blocks free, 0..1. */
  freeKvFraction: number;
  /** Tokens of this request's prefix already cached on this backend. */
  cachedPrefixTokens: number;
  healthy: boolean;
}

export class Reject {
  constructor(status: number, reason: string);
  status: number;
  reason: string;
}

export interface Router {
  /** A candidate's id, or a Reject. */
  route(request: RouteRequest, candidates: Backend[]): string | Reject;
}

export interface RouterClass {
  new (config: Config): Router;
  metadata?: Metadata;
}

// ---- sampler -----------------------------------------------------------

export interface SamplingParams {
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  logitBias: [number, number][];
  seed?: bigint;
  maxTokens: number;
}

export interface Candidate {
  id: number;
  logit: number;
}

export class Plan {
  constructor(p?: Partial<Plan>);
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  presencePenalty: number;
  frequencyPenalty: number;
  logitBias: [number, number][];
  allowed?: number[];
  banned: number[];
  static fromParams(params: SamplingParams): Plan;
}

export interface Session {
  /** A token id, or a Plan the host executes on the whole row. */
  step(candidates: Candidate[]): number | Plan;
  stepFull?(logits: Float32Array): number | Plan;
  /** The committed token; return true to end the sequence. */
  accept?(token: number): boolean;
}

export interface Sampler {
  session(params: SamplingParams, args: string, prompt: Uint32Array): Session;
}

export interface SamplerClass {
  new (config: Config): Sampler;
  metadata?: Metadata;
  capabilities?: { topK?: number; needsFullLogits?: boolean };
}

// ---- tokenizer ---------------------------------------------------------

export type SpecialKind = "bos" | "eos" | "eot" | "unk" | "pad" | "control" | "user-defined";

export interface GgufTokenizer {
  model: string;
  pre?: string;
  tokens: string[];
  merges: string[];
  scores: Float32Array;
  tokenTypes: Int32Array;
  bos?: number;
  eos?: number;
  eot?: number;
  unk?: number;
  pad?: number;
  addBos?: boolean;
  addEos?: boolean;
  addSpacePrefix?: boolean;
  precompiledCharsmap: Uint8Array;
  removeExtraWhitespaces?: boolean;
}

export type TokenizerSource = { tag: "hf-json"; val: string } | { tag: "gguf"; val: GgufTokenizer };

export interface Loaded {
  encode(text: string, addSpecial: boolean): number[];
  decode(ids: number[], skipSpecial: boolean): string;
  vocabSize(): number;
  specialTokens?(): [number, string, SpecialKind][];
  tokenBytes(ids: number[]): Uint8Array[];
}

export interface Tokenizer {
  load(source: TokenizerSource): Loaded;
}

export interface TokenizerClass {
  new (config: Config): Tokenizer;
  metadata?: Metadata;
}

// ---- exports (used by the entry `weft plugin build` generates) ---------

export function installHost(host: unknown): void;
export function exportTransform(plugin: TransformClass): unknown;
export function exportRouter(plugin: RouterClass): unknown;
export function exportSampler(plugin: SamplerClass): unknown;
export function exportTokenizer(plugin: TokenizerClass): unknown;
