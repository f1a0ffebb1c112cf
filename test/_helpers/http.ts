import { Readable } from "node:stream";
import { request } from "undici";

export interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** Any request, its answer read whole (json: the text parsed, else undefined); a body is sent as given (string, bytes, stream) or as JSON. */
export async function http(url: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Raw> {
  const raw = typeof init.body === "string" || Buffer.isBuffer(init.body) || init.body instanceof Readable;
  const body = init.body === undefined ? undefined : raw ? (init.body as string | Buffer | Readable) : JSON.stringify(init.body);
  const res = await request(url, { method: (init.method ?? (body === undefined ? "GET" : "POST")) as "GET", headers: init.headers ?? {}, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}
