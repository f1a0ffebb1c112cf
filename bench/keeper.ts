/**
 * Keeper start-up: whole-process wall time of `rbee --help` and `rbee --version` against `node -e 0`,
 * then a warm `rbee infer` (plain output, 8 tokens) against an in-process stub queen (the keeper's own
 * cost) and against the real queen -> hive -> worker when they are built (started under a temp RBEE_HOME).
 * Medians of --runs runs (default 15). Run after `npm run build`: node --import=tsx bench/keeper.ts [--runs N]
 * The helpers (timeOnce, measure, stubQueen, cleanEnv) are exported for bench/run.ts.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { JobServer, type OperationHandlers } from "../shared/job-server.js";
import { Logger } from "../shared/log.js";
import { OPERATION_NAMES, type OperationName } from "../shared/protocol.js";
import { freePort } from "./lib/proc.js";

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const { values } = isMain ? parseArgs({ options: { runs: { type: "string" } } }) : { values: {} as { runs?: string } };
const RUNS = Number(values.runs ?? 15);
const ROOT = fileURLToPath(new URL("../", import.meta.url));
export const KEEPER = path.join(ROOT, "dist/cli/rbee.js");

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

/** Wall time of one process from spawn to exit, in ms; throws on a non-zero exit. */
export function timeOnce(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.once("close", (code) => (code === 0 ? resolve(performance.now() - began) : reject(new Error(`${args.join(" ")} exited ${code}: ${err}`))));
  });
}

export interface Case {
  name: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

/** Runs the cases round-robin (so a busy machine slows them all alike) and returns each one's median. */
export async function measure(cases: Case[], runs = RUNS): Promise<[string, number][]> {
  const samples = cases.map(() => [] as number[]);
  for (const c of cases) await timeOnce(c.args, c.env); // warm the file cache
  for (let i = 0; i < runs; i++) {
    for (const [k, c] of cases.entries()) samples[k]?.push(await timeOnce(c.args, c.env));
  }
  return cases.map((c, k) => [c.name, median(samples[k] ?? [])]);
}

/** A queen stub that answers infer with 8 tokens at once: what is left is the keeper's own cost. */
export async function stubQueen(): Promise<JobServer> {
  const infer = async (_op: unknown, job: { markRunning(): void; token(t: string): void }) => {
    job.markRunning();
    for (let i = 0; i < 8; i++) job.token(`w${i} `);
    return { finish_reason: "length" as const, usage: { prompt_tokens: 1, completion_tokens: 8 } };
  };
  const operations = Object.fromEntries(OPERATION_NAMES.map((n) => [n, infer])) as unknown as OperationHandlers<OperationName>;
  const server = new JobServer({ service: "queen-rbee", version: "bench", operations, info: () => ({}), logger: new Logger("queen-rbee", null, "/dev/null") });
  await server.listen(0, "127.0.0.1");
  return server;
}


export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("RBEE_") && k !== "NODE_OPTIONS") env[k] = v;
  return { ...env, ...extra };
}

async function main(): Promise<void> {
  if (!existsSync(KEEPER)) throw new Error(`${KEEPER} is missing: run npm run build first.`);
  const home = await mkdtemp(path.join(tmpdir(), "rbee-bench-keeper-"));
  const rows: [string, number][] = [];
  try {
    const env = cleanEnv({ RBEE_HOME: home });
    const stub = await stubQueen();
    try {
      rows.push(
        ...(await measure([
          { name: "node -e 0 (baseline)", args: ["-e", "0"], env },
          { name: "rbee --version", args: [KEEPER, "--version"], env },
          { name: "rbee --help", args: [KEEPER, "--help"], env },
          { name: "rbee infer, stub queen (8 tokens)", args: [KEEPER, "infer", "hi", "--max-tokens", "8"], env: { ...env, RBEE_QUEEN_URL: stub.url } },
        ])),
      );
    } finally {
      await stub.close();
    }

    if (["queen", "hive", "worker"].every((d) => existsSync(path.join(ROOT, "dist/daemons", d, "main.js")))) {
      await mkdir(path.join(home, "config"), { recursive: true });
      await writeFile(path.join(home, "config", "hives.conf"), "Host localhost\n  HivePort 0\n");
      const real = { ...env, RBEE_DEFAULT_QUEEN_PORT: String(await freePort()) };
      try {
        // The first infer starts the queen, the hive and a worker; the runs after it are warm.
        await timeOnce([KEEPER, "infer", "warm up", "--max-tokens", "8"], real);
        rows.push(...(await measure([{ name: "rbee infer, real queen -> hive -> worker (8 tokens)", args: [KEEPER, "infer", "hi", "--max-tokens", "8", "--ignore-eos"], env: real }])));
      } finally {
        await timeOnce([KEEPER, "queen", "stop"], real).catch(() => undefined);
      }
    } else rows.push(["rbee infer, real daemons (not built)", Number.NaN]);
  } finally {
    await rm(home, { recursive: true, force: true });
  }
  const base = rows[0]?.[1] ?? Number.NaN;
  const width = Math.max(...rows.map(([n]) => n.length));
  process.stdout.write(`keeper start-up, median of ${RUNS} runs (whole process, spawn to exit)\n`);
  for (const [name, ms] of rows) {
    const d = ms - base;
    const over = Number.isNaN(ms) || name.includes("baseline") ? "" : `  (${d >= 0 ? "+" : ""}${d.toFixed(0)} ms over node)`;
    process.stdout.write(`  ${name.padEnd(width)}  ${Number.isNaN(ms) ? "-" : `${ms.toFixed(0)} ms`}${over}\n`);
  }
}

if (isMain) await main();
