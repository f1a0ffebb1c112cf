/**
 * The two parts of undici that the job client uses, loaded without undici's index. The index also loads
 * fetch, WebSocket, EventSource and the cache stores: about 50 ms of every `rbee` command's start on a
 * small machine, for code the keeper never runs (bench/keeper.ts measures the start). undici 7 has no
 * "exports" map, so Node resolves these files as they are; the types are undici's own, and the lockfile
 * pins the version these paths were read from. Both are the very modules the index re-exports, so
 * daemons that also import "undici" share one Agent class.
 */
import { createRequire } from "node:module";
import type { Agent as UndiciAgent, Dispatcher } from "undici";

const require = createRequire(import.meta.url);

export const Agent = require("undici/lib/dispatcher/agent.js") as typeof UndiciAgent;

const apiRequest = require("undici/lib/api/api-request.js") as (this: Dispatcher, options: Dispatcher.RequestOptions) => Promise<Dispatcher.ResponseData>;

export type RequestOptions = Omit<Dispatcher.RequestOptions, "origin" | "path"> & { dispatcher: Dispatcher };

/** undici's `request(url, options)`, for an explicit dispatcher (no global one is set up here). */
export function request(url: string, options: RequestOptions): Promise<Dispatcher.ResponseData> {
  const { dispatcher, ...rest } = options;
  const u = new URL(url);
  return apiRequest.call(dispatcher, { ...rest, origin: u.origin, path: `${u.pathname}${u.search}` });
}
