import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

export type BinaryName = "rbee" | "queen-rbee" | "rbee-hive" | "llm-worker-rbee";

const ENTRY: Record<BinaryName, string> = {
  rbee: "cli/rbee.js",
  "queen-rbee": "daemons/queen/main.js",
  "rbee-hive": "daemons/hive/main.js",
  "llm-worker-rbee": "daemons/worker/main.js",
};

/**
 * V8 flags a binary is started with. The queen's work is many small, short-lived objects: a small
 * young generation and V8's size-favouring heuristics keep its RSS flat under load (bench/load.ts:
 * +16 MB over 10,000 jobs, +55 MB with V8's defaults) at the same throughput.
 */
const NODE_FLAGS: Partial<Record<BinaryName, string[]>> = {
  "queen-rbee": ["--max-semi-space-size=1", "--optimize-for-size"],
};

/**
 * How to run one of rbee's own binaries from this install: the same Node, the compiled entry in
 * dist/. Works from dist/shared/ (installed) and from shared/ under tsx (tests), which both use dist.
 */
export function binaryCommand(name: BinaryName): { command: string; args: string[] } {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const distRoot = here.includes("/dist/") ? new URL("..", import.meta.url) : new URL("../dist/", import.meta.url);
  const entry = fileURLToPath(new URL(ENTRY[name], distRoot));
  if (!existsSync(entry)) throw new Error(`${name} is not built (${entry} is missing); run npm run build.`);
  return { command: process.execPath, args: [...(NODE_FLAGS[name] ?? []), entry] };
}
