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
 * How to run one of rbee's own binaries from this install: the same Node, the compiled entry in
 * dist/. Works from dist/shared/ (installed) and from shared/ under tsx (tests), which both use dist.
 */
export function binaryCommand(name: BinaryName): { command: string; args: string[] } {
  const here = fileURLToPath(new URL(".", import.meta.url));
  const distRoot = here.includes("/dist/") ? new URL("..", import.meta.url) : new URL("../dist/", import.meta.url);
  const entry = fileURLToPath(new URL(ENTRY[name], distRoot));
  if (!existsSync(entry)) throw new Error(`${name} is not built (${entry} is missing); run npm run build.`);
  return { command: process.execPath, args: [entry] };
}
