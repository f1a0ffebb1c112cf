import type { FinishReason, Usage } from "../../shared/protocol.js";

/** OpenAI response bodies built from an rbee job's tokens and `end` event. */

export type CompletionKind = "chat" | "text";

/** What every response and chunk of one request repeats. */
export interface ResponseMeta {
  kind: CompletionKind;
  id: string;
  created: number;
  model: string;
}

export interface OpenAiUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** The job's id is in the response id, so a response can be looked up in `GET /v1/jobs` and the logs. */
export function responseMeta(kind: CompletionKind, jobId: string, model: string): ResponseMeta {
  return { kind, id: `${kind === "chat" ? "chatcmpl" : "cmpl"}-${jobId}`, created: Math.floor(Date.now() / 1000), model };
}

/** Usage from the worker, or counted tokens when a job ended without it. */
export function openAiUsage(usage: Usage | undefined, tokensSeen: number): OpenAiUsage {
  const prompt = usage?.prompt_tokens ?? 0;
  const completion = usage?.completion_tokens ?? tokensSeen;
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

const head = (m: ResponseMeta, object: string) => ({ id: m.id, object, created: m.created, model: m.model });

export function completionBody(m: ResponseMeta, text: string, finish: FinishReason, usage: OpenAiUsage): object {
  const choice =
    m.kind === "chat"
      ? { index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: finish }
      : { text, index: 0, logprobs: null, finish_reason: finish };
  return { ...head(m, m.kind === "chat" ? "chat.completion" : "text_completion"), choices: [choice], usage };
}

/** One streamed chunk; chat sends `{role}` first, then `{content}`; with include_usage every chunk has `usage: null`. */
export function chunkBody(
  m: ResponseMeta,
  part: { role?: "assistant"; text?: string; finish?: FinishReason },
  includeUsage: boolean,
): object {
  const finish = part.finish ?? null;
  let choice: object;
  if (m.kind === "chat") {
    const delta: Record<string, string> = {};
    if (part.role) delta["role"] = part.role;
    if (part.text !== undefined) delta["content"] = part.text;
    choice = { index: 0, delta, logprobs: null, finish_reason: finish };
  } else {
    choice = { text: part.text ?? "", index: 0, logprobs: null, finish_reason: finish };
  }
  return { ...head(m, m.kind === "chat" ? "chat.completion.chunk" : "text_completion"), choices: [choice], ...(includeUsage ? { usage: null } : {}) };
}

/** The chunk `stream_options.include_usage` asks for: no choices, the request's usage. */
export function usageChunkBody(m: ResponseMeta, usage: OpenAiUsage): object {
  return { ...head(m, m.kind === "chat" ? "chat.completion.chunk" : "text_completion"), choices: [], usage };
}

/** float32 little-endian, base64: what OpenAI sends for `encoding_format: "base64"` (the official client's default). */
export function float32Base64(vector: readonly number[]): string {
  const buf = Buffer.alloc(vector.length * 4);
  vector.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString("base64");
}

export function embeddingsBody(model: string, vectors: number[][], encoding: "float" | "base64", promptTokens: number): object {
  return {
    object: "list",
    data: vectors.map((v, index) => ({ object: "embedding", index, embedding: encoding === "base64" ? float32Base64(v) : v })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}
