import { invalid } from "../../shared/errors.js";
import { modelId, type ChatMessage } from "../../shared/protocol.js";
import { boolean, isPlainObject, number, oneOf } from "../../shared/schema.js";

/**
 * OpenAI request bodies -> the fields of rbee's `infer` and `embed` operations. This file checks what is
 * OpenAI-specific (shapes, neutral values, what rbee cannot do) with OpenAI's field names; the mapped
 * operation is then validated once more by `parseOperation`, which owns the contract's ranges.
 */

/** Used when the client sends no max_tokens and the model's context length is unknown: rbee-tiny's context. */
export const DEFAULT_MAX_TOKENS = 4096;
/** OpenAI's default temperature (rbee's own `infer` default is 0.7). */
export const OPENAI_TEMPERATURE = 1;

type Body = Record<string, unknown>;

export interface SamplingRequest {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  /** The infer operation, without `prompt`/`messages` and without a default `max_tokens`. */
  fields: Body;
}

export interface ChatRequest extends SamplingRequest {
  messages: ChatMessage[];
}
export interface CompletionRequest extends SamplingRequest {
  prompt: string;
}
export interface EmbeddingsRequest {
  model: string;
  encoding: "float" | "base64";
  /** The embed operation. */
  op: Body;
}

/** OpenAI clients send `null` for "not set"; the contract says optional fields are left out instead. */
const given = (body: Body, key: string): boolean => body[key] !== undefined && body[key] !== null;

function requireObject(body: unknown): Body {
  if (!isPlainObject(body)) throw invalid("body", "must be a JSON object.");
  return body;
}

function requireModel(body: Body): string {
  if (!given(body, "model")) throw invalid("model", 'is required: name a model from GET /v1/models (for example "rbee-tiny").');
  return modelId(body["model"], "model");
}

/** A field rbee cannot honour is accepted only with its neutral value. */
function neutral(body: Body, key: string, isNeutral: (v: unknown) => boolean, why: string): void {
  if (given(body, key) && !isNeutral(body[key])) throw invalid(key, why);
}

const isZero = (v: unknown): boolean => v === 0;
const isFalse = (v: unknown): boolean => v === false;
const isEmptyList = (v: unknown): boolean => Array.isArray(v) && v.length === 0;
const isEmptyObject = (v: unknown): boolean => isPlainObject(v) && Object.keys(v).length === 0;

function checkN(body: Body, key: "n" | "best_of"): void {
  if (!given(body, key)) return;
  const n = number({ integer: true, min: 1 })(body[key], key);
  if (n !== 1) throw invalid(key, `rbee returns one choice per request; send ${key}: 1 or leave it out (send ${n} requests for ${n} choices).`);
}

function checkPenalties(body: Body): void {
  for (const key of ["presence_penalty", "frequency_penalty"] as const) {
    if (!given(body, key)) continue;
    number({ min: -2, max: 2 })(body[key], key);
    neutral(body, key, isZero, "rbee does not apply repetition penalties; send 0 or leave it out.");
  }
  neutral(body, "logit_bias", isEmptyObject, "rbee does not support logit_bias; leave it out.");
}

/** Fields both completion endpoints share: sampling, streaming, and rbee's own extensions passed through. */
function parseSampling(body: Body): SamplingRequest {
  checkN(body, "n");
  checkPenalties(body);
  const stream = given(body, "stream") ? boolean()(body["stream"], "stream") : false;
  let includeUsage = false;
  if (given(body, "stream_options")) {
    const so = body["stream_options"];
    if (!isPlainObject(so)) throw invalid("stream_options", "must be an object like {\"include_usage\": true}.");
    if (given(so, "include_usage")) includeUsage = boolean()(so["include_usage"], "stream_options.include_usage");
  }
  const fields: Body = { operation: "infer" };
  // max_completion_tokens is the newer name of max_tokens; it wins when both are sent.
  for (const key of ["max_tokens", "max_completion_tokens"] as const) {
    if (given(body, key)) fields["max_tokens"] = number({ integer: true, min: 1 })(body[key], key);
  }
  fields["temperature"] = given(body, "temperature") ? body["temperature"] : OPENAI_TEMPERATURE;
  if (given(body, "stop")) {
    const stop = body["stop"];
    if (typeof stop !== "string" && !Array.isArray(stop)) throw invalid("stop", "must be a string or a list of strings.");
    fields["stop"] = typeof stop === "string" ? [stop] : stop;
  }
  // top_k, ignore_eos, keep_alive and the placement pins are rbee extensions some clients send on purpose.
  for (const key of ["top_p", "seed", "top_k", "ignore_eos", "keep_alive", "hive_id", "worker_id"]) {
    if (given(body, key)) fields[key] = body[key];
  }
  return { model: requireModel(body), stream, includeUsage, fields };
}

/** Joins a message's content: a string, or a list of text parts (images, audio and files are refused). */
function messageContent(v: unknown, field: string, role: string): string {
  if (typeof v === "string") return v;
  if (v === null || v === undefined) {
    if (role === "assistant") return "";
    throw invalid(field, "must be a string or a list of text parts.");
  }
  if (!Array.isArray(v)) throw invalid(field, "must be a string or a list of text parts.");
  return v
    .map((part, i) => {
      const f = `${field}[${i}]`;
      if (!isPlainObject(part)) throw invalid(f, 'must be an object like {"type": "text", "text": "..."}.');
      if (part["type"] !== "text") throw invalid(`${f}.type`, `rbee models read text only; "${String(part["type"]).slice(0, 40)}" parts are not supported.`);
      if (typeof part["text"] !== "string") throw invalid(`${f}.text`, "must be a string.");
      return part["text"];
    })
    .join("\n");
}

function parseMessages(v: unknown): ChatMessage[] {
  if (!Array.isArray(v)) throw invalid("messages", v === undefined || v === null ? "is required: a list of {role, content}." : "must be a list of {role, content}.");
  if (v.length === 0) throw invalid("messages", "must not be an empty list.");
  return v.map((m, i): ChatMessage => {
    const f = `messages[${i}]`;
    if (!isPlainObject(m)) throw invalid(f, "must be an object with role and content.");
    const raw = m["role"];
    if (raw === "tool" || raw === "function") throw invalid(`${f}.role`, `"${raw}" messages answer tool calls, which rbee does not support.`);
    // OpenAI's newer clients send "developer" where older ones sent "system".
    const role = raw === "developer" ? "system" : oneOf(["system", "user", "assistant"] as const)(raw, `${f}.role`);
    neutral(m, "tool_calls", isEmptyList, "rbee does not support tool calls.");
    neutral(m, "function_call", () => false, "rbee does not support function calls.");
    return { role, content: messageContent(m["content"], `${f}.content`, role) };
  });
}

export function parseChatRequest(raw: unknown): ChatRequest {
  const body = requireObject(raw);
  const noTools = "rbee does not support tool calling; leave it out.";
  neutral(body, "tools", isEmptyList, noTools);
  neutral(body, "functions", isEmptyList, noTools);
  neutral(body, "tool_choice", (v) => v === "none" || v === "auto", noTools);
  neutral(body, "function_call", (v) => v === "none" || v === "auto", noTools);
  neutral(body, "logprobs", isFalse, "rbee does not return log probabilities; send false or leave it out.");
  neutral(body, "top_logprobs", isZero, "rbee does not return log probabilities; leave it out.");
  neutral(body, "response_format", (v) => isPlainObject(v) && v["type"] === "text",
    'rbee cannot constrain output to JSON; send {"type": "text"} or leave it out.');
  neutral(body, "modalities", (v) => Array.isArray(v) && v.every((m) => m === "text"), 'rbee generates text only; send ["text"] or leave it out.');
  neutral(body, "audio", () => false, "rbee generates text only; leave it out.");
  neutral(body, "web_search_options", () => false, "rbee cannot search the web; leave it out.");
  const messages = parseMessages(body["messages"]);
  return { ...parseSampling(body), messages };
}

export function parseCompletionRequest(raw: unknown): CompletionRequest {
  const body = requireObject(raw);
  checkN(body, "best_of");
  neutral(body, "echo", isFalse, "rbee does not echo the prompt; send false or leave it out.");
  neutral(body, "suffix", (v) => v === "", "rbee does not support insertion (suffix); leave it out.");
  neutral(body, "logprobs", isFalse, "rbee does not return log probabilities; leave it out.");
  let prompt = body["prompt"];
  if (prompt === undefined || prompt === null) throw invalid("prompt", "is required: a string.");
  if (Array.isArray(prompt)) {
    if (prompt.length !== 1 || typeof prompt[0] !== "string")
      throw invalid("prompt", "must be one string (or a list holding one string); send one request per prompt, and text, not token ids.");
    prompt = prompt[0];
  }
  if (typeof prompt !== "string") throw invalid("prompt", "must be a string.");
  return { ...parseSampling(body), prompt };
}

export function parseEmbeddingsRequest(raw: unknown): EmbeddingsRequest {
  const body = requireObject(raw);
  const input = body["input"];
  if (input === undefined || input === null) throw invalid("input", "is required: a string or a list of strings.");
  if (Array.isArray(input) && input.some((x) => typeof x !== "string"))
    throw invalid("input", "must be a string or a list of strings; token id arrays are not supported, send text.");
  const encoding = given(body, "encoding_format") ? oneOf(["float", "base64"] as const)(body["encoding_format"], "encoding_format") : "float";
  neutral(body, "dimensions", () => false, "rbee returns the model's full embedding size; leave it out.");
  const op: Body = { operation: "embed", input };
  for (const key of ["keep_alive", "hive_id", "worker_id"]) if (given(body, key)) op[key] = body[key];
  const model = requireModel(body);
  op["model"] = model;
  return { model, encoding, op };
}
