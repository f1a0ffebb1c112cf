import { open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { resolvePaths } from "../../shared/paths.js";
import { bool, str } from "../args.js";
import type { CommandContext } from "../context.js";
import { EXIT, usageError } from "../exit-codes.js";

const SERVICES: Record<string, string> = {
  queen: "queen-rbee",
  hive: "rbee-hive",
  worker: "llm-worker-rbee",
  "queen-rbee": "queen-rbee",
  "rbee-hive": "rbee-hive",
  "llm-worker-rbee": "llm-worker-rbee",
};
const POLL_MS = 250;

export interface LogRecord {
  ts: string;
  service?: string;
  node?: string | null;
  level?: string;
  action?: string;
  human?: string;
  job_id?: string;
  parent_job_id?: string;
  correlation_id?: string;
  [k: string]: unknown;
}

export interface LogFilter {
  service?: string;
  correlationId?: string;
  job?: string;
}

/** One log line as a record; the daemons' stdout lines in the same file (`listening ...`) are not JSON and are skipped. */
export function parseLine(line: string): LogRecord | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const r = JSON.parse(line) as LogRecord;
    return typeof r === "object" && r !== null && typeof r.ts === "string" ? r : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A filter over batches of records. `--job` takes the job's whole subtree (queen job -> hive job -> worker
 * job): every line with a parent_job_id links its job to its parent, remembered across batches (--follow),
 * and a line belongs when following those links from its job reaches the asked one.
 */
export function logFilter(f: LogFilter): (batch: LogRecord[]) => LogRecord[] {
  const parents = new Map<string, string>();
  const inTree = (id: string | undefined): boolean => {
    // Bounded: a corrupt log with a parent cycle must not hang the keeper.
    for (let j = id, hops = 0; j !== undefined && hops < 64; j = parents.get(j), hops++) if (j === f.job) return true;
    return false;
  };
  return (batch) => {
    for (const r of batch) if (r.job_id !== undefined && r.parent_job_id !== undefined) parents.set(r.job_id, r.parent_job_id);
    return batch.filter(
      (r) =>
        (f.job === undefined || inTree(r.job_id)) &&
        (f.service === undefined || r.service === f.service) &&
        (f.correlationId === undefined || r.correlation_id === f.correlationId),
    );
  };
}

/** Records of several files in time order (stable for equal times). */
export function merge(records: LogRecord[]): LogRecord[] {
  return records
    .map((r, i) => ({ r, i, t: Date.parse(r.ts) }))
    .sort((a, b) => (a.t - b.t) || a.i - b.i)
    .map((x) => x.r);
}

export function formatRecord(r: LogRecord): string {
  const who = `${r.service ?? "?"}${r.node ? `[${r.node}]` : ""}`;
  const ids = [r.job_id, r.correlation_id].filter(Boolean).join(" ");
  return `${r.ts} ${who} ${(r.level ?? "info").padEnd(5)} ${r.human ?? r.action ?? ""}${ids ? `  (${ids})` : ""}`;
}

/** Reads what each log file gained since the last call, keeping a partial last line for next time. */
class LogFiles {
  private readonly offsets = new Map<string, { at: number; rest: string }>();
  constructor(private readonly dir: string) {}

  async read(): Promise<{ raw: string; record: LogRecord }[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const out: { raw: string; record: LogRecord }[] = [];
    for (const name of names.filter((n) => n.endsWith(".log")).sort()) {
      const file = join(this.dir, name);
      const state = this.offsets.get(file) ?? { at: 0, rest: "" };
      const handle = await open(file, "r").catch(() => undefined);
      if (!handle) continue;
      try {
        const { size } = await handle.stat();
        if (size < state.at) Object.assign(state, { at: 0, rest: "" }); // truncated or replaced
        if (size === state.at) {
          this.offsets.set(file, state);
          continue;
        }
        const buf = Buffer.alloc(size - state.at);
        await handle.read(buf, 0, buf.length, state.at);
        state.at = size;
        const lines = (state.rest + buf.toString("utf8")).split("\n");
        state.rest = lines.pop() ?? "";
        this.offsets.set(file, state);
        for (const raw of lines) {
          const record = parseLine(raw);
          if (record) out.push({ raw, record });
        }
      } finally {
        await handle.close();
      }
    }
    return out;
  }
}

export async function run(ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const service = str(a, "service");
  if (service !== undefined && !SERVICES[service]) throw usageError(`--service must be queen, hive or worker, got "${service}".`);
  const filter: LogFilter = {};
  if (service !== undefined) filter.service = SERVICES[service] as string;
  const corr = str(a, "correlation-id");
  if (corr !== undefined) filter.correlationId = corr;
  const job = str(a, "job");
  if (job !== undefined) filter.job = job;

  const dir = resolvePaths(ctx.env).stateDir;
  const files = new LogFiles(dir);
  const keep = logFilter(filter);
  const print = (batch: { raw: string; record: LogRecord }[]) => {
    const byRecord = new Map(batch.map((b) => [b.record, b.raw]));
    for (const r of keep(merge(batch.map((b) => b.record)))) {
      ctx.stdout.write(`${ctx.mode === "json" ? byRecord.get(r) : formatRecord(r)}\n`);
    }
  };
  print(await files.read());
  if (!bool(a, "follow")) return EXIT.ok;

  return new Promise<number>((resolve) => {
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      files.read().then(print, () => {}).finally(() => (busy = false));
    }, POLL_MS);
    ctx.onInterrupt(() => {
      clearInterval(timer);
      resolve(EXIT.cancelled);
    });
  });
}
