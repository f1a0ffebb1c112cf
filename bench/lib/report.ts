/** The results of `npm run bench`: their shape, the targets, and the Markdown written from them. */
import type { MachineInfo, Versions } from "./machine.js";
import { fmt, fmtRatio } from "./stats.js";

export interface OverheadRow {
  path: string;
  tokens_per_s: number;
  ttft_ms: number;
  ttft_p90_ms: number;
  ratio_tokens_per_s: number;
  added_ttft_ms: number;
  tokens_per_s_samples: number[];
  /** CPU ms per token by process (worker, hive, queen, client = the benchmark process; in_process) */
  cpu_ms_per_token: Record<string, number>;
}

export interface ConcurrencyRow {
  parallel: number;
  concurrent: number;
  tokens_per_s: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  /** aggregate tokens/s against 1 request on --parallel 1 */
  ratio: number;
}

export interface MemoryReading {
  queen_mib: number;
  hive_mib: number;
  workers: Record<string, number>;
}

export interface LoadFigures {
  status: { jobs: number; completed: number; failed: number; seconds: number; jobs_per_s: number; p50_ms: number; p99_ms: number; concurrency: number };
  infer: { jobs: number; completed: number; failed: number; seconds: number; jobs_per_s: number; p50_ms: number; p99_ms: number; parallel: number; tokens: number; tokens_per_s: number };
  memory: { jobs: number; rss_after_100_mb: number; rss_after_all_mb: number; delta_mb: number; jobs_listed: number; max_finished_jobs: number };
}

export interface Results {
  date: string;
  quick: boolean;
  machine: MachineInfo;
  versions: Versions;
  load_average_end: number[];
  duration_s: number;
  peer_build_s: number;
  sections: string[];
  models: Array<{ id: string; label: string; tensor_type: string; file_bytes: number; threads: number; context_size: number }>;
  overhead: Record<string, { tokens: number; rounds: number; threads: number; rows: OverheadRow[] }>;
  concurrency: Record<string, { tokens: number; rounds: number; rows: ConcurrencyRow[] }>;
  peer: {
    available: boolean;
    note: string;
    build_flags?: string;
    comparisons: Record<string, Array<{ parallel: number; concurrent: number; tokens: number; peer_tokens_per_s: number; peer_server_tokens_per_s: number; rbee_tokens_per_s: number; in_process_tokens_per_s: number; ratio: number; peer_ttft_ms: number; rbee_ttft_ms: number; peer_args: string }>>;
  };
  control:
    | {
        status_sequential: { jobs_per_s: number; p50_ms: number; p99_ms: number; jobs: number };
        status_concurrent: { concurrency: number; jobs: number; jobs_per_s: number; p50_ms: number; p99_ms: number };
        fanout: { subscribers: number; events_per_stream: number; one_subscriber_ms: number; all_subscribers_ms: number; ratio: number; events_per_s: number };
      }
    | undefined;
  startup:
    | { cold_rounds: number; cold_ttft_ms: number; cold_ttft_max_ms: number; cold_exit_ms: number; rounds: number; rows: Array<{ name: string; ms: number; over_node_ms: number }> }
    | undefined;
  memory: { idle: MemoryReading; after_load: MemoryReading } | undefined;
  load: LoadFigures | undefined;
  load_options?: Record<string, number>;
  load_note: string;
  /** parts of the run that failed (their figures are missing) */
  errors: string[];
  targets?: Target[];
}

export interface Target {
  name: string;
  goal: string;
  value: string;
  met: boolean | undefined;
}

const QUEEN = "queen -> hive -> worker (3 hops)";

/** The six targets of the issue, met or not (undefined: not measured in this run). */
export function targets(r: Results): Target[] {
  const out: Target[] = [];
  const ids = r.models.map((m) => m.id);
  const each = (f: (id: string) => number | undefined): Array<[string, number]> => ids.flatMap((id) => {
    const v = f(id);
    return v === undefined || !Number.isFinite(v) ? [] : [[id, v] as [string, number]];
  });
  const list = (xs: Array<[string, number]>, show: (v: number) => string): string => xs.map(([id, v]) => `${show(v)} (${id})`).join(", ") || "not measured";
  const all = (xs: Array<[string, number]>, ok: (v: number) => boolean): boolean | undefined => (xs.length === 0 ? undefined : xs.every(([, v]) => ok(v)));

  const tps = each((id) => r.overhead[id]?.rows.find((x) => x.path === QUEEN)?.ratio_tokens_per_s);
  out.push({ name: "decode tokens/s through the queen vs in-process", goal: ">= 0.95x", value: list(tps, (v) => `${v.toFixed(3)}x`), met: all(tps, (v) => v >= 0.95) });
  const ttft = each((id) => r.overhead[id]?.rows.find((x) => x.path === QUEEN)?.added_ttft_ms);
  out.push({ name: "TTFT added by queen + hive + worker", goal: "<= 10 ms", value: list(ttft, (v) => `${v >= 0 ? "+" : ""}${v.toFixed(1)} ms`), met: all(ttft, (v) => v <= 10) });
  const par = each((id) => {
    const rows = r.concurrency[id]?.rows ?? [];
    const p8 = rows.find((x) => x.parallel === 8 && x.concurrent === 8)?.tokens_per_s;
    const p1 = rows.find((x) => x.parallel === 1 && x.concurrent === 8)?.tokens_per_s;
    return p8 !== undefined && p1 !== undefined ? p8 / p1 : undefined;
  });
  out.push({ name: "aggregate tokens/s, 8 requests on --parallel 8 vs --parallel 1", goal: ">= 3x", value: list(par, (v) => `${v.toFixed(2)}x`), met: all(par, (v) => v >= 3) });
  const peer1 = each((id) => r.peer.comparisons[id]?.find((c) => c.concurrent === 1)?.ratio);
  out.push({ name: "single-stream tokens/s through the queen vs llama-server", goal: ">= 1.0x", value: r.peer.available ? list(peer1, (v) => `${v.toFixed(3)}x`) : "peer not available", met: all(peer1, (v) => v >= 1) });
  const peer8 = each((id) => r.peer.comparisons[id]?.find((c) => c.concurrent === 8)?.ratio);
  out.push({ name: "8-parallel aggregate tokens/s through the queen vs llama-server -np 8", goal: ">= 1.0x", value: r.peer.available ? list(peer8, (v) => `${v.toFixed(3)}x`) : "peer not available", met: all(peer8, (v) => v >= 1) });
  // judged on the warmed-up queen (control plane); load.ts's first 1,000 jobs on a fresh queen include JIT warm-up
  const warm = r.control?.status_concurrent.jobs_per_s;
  const fresh = r.load?.status.jobs_per_s;
  const judged = warm ?? fresh;
  out.push({
    name: "status jobs/s on the queen (50 in flight)",
    goal: ">= 1,000",
    value: judged === undefined ? "not measured" : [warm !== undefined ? `${fmt(warm, 0)} (warm queen)` : "", fresh !== undefined ? `${fmt(fresh, 0)} (load.ts: a fresh queen's first 1,000 jobs)` : ""].filter(Boolean).join(", "),
    met: judged === undefined ? undefined : judged >= 1000,
  });
  const cold = r.startup?.cold_ttft_ms;
  out.push({ name: "cold `rbee infer` to first token, rbee-tiny", goal: "<= 3 s", value: cold === undefined ? "not measured" : `${fmt(cold / 1000, 2)} s (worst ${fmt((r.startup?.cold_ttft_max_ms ?? Number.NaN) / 1000, 2)} s)`, met: cold === undefined ? undefined : cold <= 3000 });
  return out;
}

const mark = (m: boolean | undefined): string => (m === undefined ? "not measured" : m ? "**met**" : "**missed**");
const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;

function targetTable(ts: Target[]): string[] {
  return ["| target | goal | this run | |", "| --- | --- | --- | --- |", ...ts.map((t) => `| ${t.name} | ${t.goal} | ${t.value} | ${mark(t.met)} |`)];
}

function overheadTable(r: Results, id: string, cpu = true): string[] {
  const o = r.overhead[id];
  if (!o) return [];
  return [
    `| path (${id}, ${o.tokens} tokens, ${o.threads} thread(s), median of ${o.rounds}) | decode tokens/s | ratio | TTFT ms | added TTFT ms | TTFT p90 ms |${cpu ? " CPU ms/token by process |" : ""}`,
    `| --- | ---: | ---: | ---: | ---: | ---: |${cpu ? " --- |" : ""}`,
    ...o.rows.map((x) => `| ${x.path} | ${fmt(x.tokens_per_s)} | ${fmtRatio(x.ratio_tokens_per_s, 3)} | ${fmt(x.ttft_ms, 2)} | ${x.path.startsWith("in-process") ? "(baseline)" : `${x.added_ttft_ms >= 0 ? "+" : ""}${fmt(x.added_ttft_ms, 2)}`} | ${fmt(x.ttft_p90_ms, 2)} |${cpu ? ` ${Object.entries(x.cpu_ms_per_token ?? {}).map(([k, v]) => `${k.replace("_", "-")} ${fmt(v, 2)}`).join(", ")} |` : ""}`),
  ];
}

function concurrencyTable(r: Results, id: string): string[] {
  const c = r.concurrency[id];
  if (!c) return [];
  const levels = [...new Set(c.rows.map((x) => x.concurrent))];
  const cell = (p: number, n: number): string => {
    const x = c.rows.find((y) => y.parallel === p && y.concurrent === n);
    return x ? `${fmt(x.tokens_per_s)} (${fmtRatio(x.ratio)}) / ${fmt(x.ttft_p50_ms, 0)} / ${fmt(x.ttft_p99_ms, 0)}` : "-";
  };
  return [
    `| ${id}: concurrent requests (${c.tokens} tokens each, median of ${c.rounds}) | --parallel 1: tokens/s (x) / TTFT p50 / p99 ms | --parallel 8: tokens/s (x) / TTFT p50 / p99 ms |`,
    "| ---: | --- | --- |",
    ...levels.map((n) => `| ${n} | ${cell(1, n)} | ${cell(8, n)} |`),
  ];
}

function peerTable(r: Results): string[] {
  const rows = Object.entries(r.peer.comparisons).flatMap(([id, cs]) => cs.map((c) => `| ${id} | ${c.concurrent === 1 ? "single stream" : `${c.concurrent} parallel (-np ${c.parallel})`} | ${c.tokens} | ${fmt(c.peer_tokens_per_s)} (its timings: ${fmt(c.peer_server_tokens_per_s)}${c.concurrent > 1 ? " per request" : ""}) | ${fmt(c.rbee_tokens_per_s)} | ${fmtRatio(c.ratio, 3)} | ${fmt(c.in_process_tokens_per_s)} (${fmtRatio(c.in_process_tokens_per_s / c.peer_tokens_per_s, 3)}) | ${fmt(c.peer_ttft_ms, 1)} / ${fmt(c.rbee_ttft_ms, 1)} |`));
  if (rows.length === 0) return [];
  return ["| model | case | tokens | llama-server tokens/s | rbee via queen tokens/s | rbee / llama-server | node-llama-cpp in-process tokens/s (/ llama-server) | TTFT ms llama-server / rbee |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |", ...rows];
}

export function renderResults(r: Results): string {
  r.targets = targets(r);
  const m = r.machine;
  const v = r.versions;
  const L: string[] = [];
  L.push("# rbee benchmark results", "");
  L.push(`Generated by \`npm run bench${r.quick ? " -- --quick" : ""}\` (bench/run.ts) on ${r.date}. ${r.quick ? "**Quick run**: fewer rounds, rbee-tiny only. " : ""}Bench time ${r.duration_s} s${r.peer_build_s > 60 ? ` (+ ${r.peer_build_s} s building llama-server once)` : ""}.`, "");
  L.push("| | |", "| --- | --- |");
  L.push(`| CPU | ${m.cpu_model}, ${m.cores_logical} logical cores (${m.cores_available} available to this process), ${m.arch} |`);
  L.push(`| RAM | ${m.ram_gib} GiB |`);
  L.push(`| OS | ${m.os} (${m.kernel}) |`);
  L.push(`| load average (1/5/15 min) | ${m.load_average_start.join(" / ")} at the start, ${r.load_average_end.join(" / ")} at the end |`);
  L.push(`| versions | node ${v.node}, rbee ${v.rbee}, node-llama-cpp ${v.node_llama_cpp}, llama.cpp ${v.llama_cpp_release} commit ${v.llama_cpp_commit.slice(0, 12)} |`);
  L.push(`| models | ${r.models.map((x) => `${x.label}: ${mib(x.file_bytes)}, ${x.threads} CPU thread(s) as the worker picks them, context ${x.context_size} per sequence`).join("; ") || "-"} |`);
  L.push(`| sections | ${r.sections.join(", ")} |`, "");
  if (m.load_average_start[0]! > m.cores_available * 0.5) {
    L.push(`> The machine was busy (load average ${m.load_average_start[0]} on ${m.cores_available} cores at the start): wall-clock figures carry that noise. Ratios compare paths measured round by round in the same minutes, so they are more trustworthy than the absolute numbers.`, "");
  }
  if (r.errors.length > 0) L.push("**Parts of this run failed** (their figures are missing):", "", ...r.errors.map((e) => `- ${e}`), "");
  L.push("## Targets", "", ...targetTable(r.targets), "");

  L.push("## Overhead per hop", "");
  L.push("One `infer` (greedy, `ignore_eos`, the same prompt) timed at the client on each path, rounds interleaved. *In-process* is node-llama-cpp in the benchmark's own process, set up like the worker's engine (CPU, the worker's threads and context, the slot's cached prompt prefix kept, every token detokenized). TTFT is from the request (POST; for the CLI, the process spawn) to the first token; decode tokens/s counts tokens after the first. The CLI's TTFT includes starting Node. *CPU ms/token by process* is the CPU time (user + system, from /proc) each process spent per generated token on that path, summed over the rounds (client = the benchmark process reading the stream); unlike wall-clock figures it hardly depends on how busy the machine is.", "");
  for (const id of Object.keys(r.overhead)) L.push(...overheadTable(r, id), "");

  L.push("## Concurrency", "");
  L.push("N requests at once through the queen, pinned to one worker spawned with `worker_spawn` `parallel` 1 or 8. Aggregate tokens/s = all tokens / wall time of the batch; (x) is against 1 request on `--parallel 1`. TTFT includes waiting for a free slot.", "");
  for (const id of Object.keys(r.concurrency)) L.push(...concurrencyTable(r, id), "");

  L.push("## Peer: llama.cpp's llama-server", "");
  if (!r.peer.available) L.push(`llama-server: ${r.peer.note}.`, "");
  else {
    L.push(`llama-server built from the llama.cpp source node-llama-cpp ships (commit ${v.llama_cpp_commit.slice(0, 12)}), \`${r.peer.build_flags ?? ""}\`, target llama-server only; ${r.peer.note}. Same GGUF, same threads, one KV cache of the worker's context per slot, \`/completion\` with \`stream: true\`, \`ignore_eos\`, greedy; timed at the client like rbee, rounds interleaved with rbee through the queen. Single stream: decode tokens/s of one request; parallel: aggregate tokens/s of 8 requests at once on \`-np 8\` against a \`--parallel 8\` worker. The node-llama-cpp column is the library alone in the benchmark's process (a context with as many sequences as slots, driven like the worker), measured in the same rounds: the gap between it and llama-server is the library's, the gap between it and rbee is rbee's.`, "");
    L.push(...peerTable(r), "");
    const args = Object.values(r.peer.comparisons).flat()[0]?.peer_args;
    if (args) L.push(`Command line: \`${args}\`.`, "");
  }

  L.push("## Control plane", "");
  if (r.control) {
    const c = r.control;
    L.push("| figure | value |", "| --- | --- |");
    L.push(`| \`status\` jobs one at a time (POST, stream to \`end\`) | ${fmt(c.status_sequential.jobs_per_s, 0)} jobs/s, p50 ${fmt(c.status_sequential.p50_ms, 2)} ms, p99 ${fmt(c.status_sequential.p99_ms, 2)} ms (${c.status_sequential.jobs} jobs) |`);
    L.push(`| \`status\` jobs, ${c.status_concurrent.concurrency} in flight | ${fmt(c.status_concurrent.jobs_per_s, 0)} jobs/s, p50 ${fmt(c.status_concurrent.p50_ms, 2)} ms, p99 ${fmt(c.status_concurrent.p99_ms, 2)} ms (${c.status_concurrent.jobs} jobs) |`);
    L.push(`| SSE fan-out: one infer job (256 tokens, ~${c.fanout.events_per_stream} events), ${c.fanout.subscribers} subscribers | all received \`end\` ${fmt(c.fanout.all_subscribers_ms, 1)} ms after the POST vs ${fmt(c.fanout.one_subscriber_ms, 1)} ms with 1 subscriber (${fmtRatio(c.fanout.ratio)}); ${fmt(c.fanout.events_per_s, 0)} events/s delivered |`, "");
  } else L.push("Not measured in this run.", "");

  L.push("## Start-up", "");
  if (r.startup) {
    const s = r.startup;
    L.push("| case | median ms | over `node -e 0` |", "| --- | ---: | ---: |");
    L.push(`| cold \`rbee infer\` (fresh RBEE_HOME, no queen: starts queen, hive, writes rbee-tiny, spawns a worker) to the first token | ${fmt(s.cold_ttft_ms, 0)} (worst of ${s.cold_rounds}: ${fmt(s.cold_ttft_max_ms, 0)}) | |`);
    L.push(`| same, whole process (8 tokens) | ${fmt(s.cold_exit_ms, 0)} | |`);
    for (const x of s.rows) L.push(`| ${x.name} (whole process, median of ${s.rounds}) | ${fmt(x.ms, 0)} | ${Number.isFinite(x.over_node_ms) ? `+${fmt(x.over_node_ms, 0)}` : ""} |`);
    L.push("");
  } else L.push("Not measured in this run.", "");

  L.push("## Memory (VmRSS)", "");
  if (r.memory) {
    const rows = (x: MemoryReading): string[] => [`queen-rbee ${fmt(x.queen_mib)} MiB`, `rbee-hive ${fmt(x.hive_mib)} MiB`, ...Object.entries(x.workers).map(([k, w]) => `worker ${k} ${fmt(w)} MiB`)];
    L.push("| when | RSS |", "| --- | --- |");
    L.push(`| idle (daemons started, worker loaded, no job yet) | ${rows(r.memory.idle).join("; ")} |`);
    L.push(`| after load (the concurrency runs, fan-out and status jobs above) | ${rows(r.memory.after_load).join("; ")} |`, "");
  } else L.push("Not measured in this run.", "");

  L.push("## Load (bench/load.ts)", "");
  if (r.load) {
    const l = r.load;
    L.push(`A queen of its own; options ${JSON.stringify(r.load_options ?? {})}.`, "");
    L.push("| run | completed | jobs/s | p50 ms | p99 ms | |", "| --- | ---: | ---: | ---: | ---: | --- |");
    L.push(`| ${l.status.jobs} \`status\` jobs, ${l.status.concurrency} at a time | ${l.status.completed}/${l.status.jobs} | ${fmt(l.status.jobs_per_s, 0)} | ${fmt(l.status.p50_ms)} | ${fmt(l.status.p99_ms)} | |`);
    L.push(`| ${l.infer.jobs} \`infer\` at once (${l.infer.parallel} slots) | ${l.infer.completed}/${l.infer.jobs} | ${fmt(l.infer.jobs_per_s)} | ${fmt(l.infer.p50_ms)} | ${fmt(l.infer.p99_ms)} | ${fmt(l.infer.tokens_per_s)} tokens/s |`, "");
    if (l.infer.failed > 0 || l.status.failed > 0) L.push(`**${l.status.failed + l.infer.failed} load job(s) failed**${r.load_note ? `: ${r.load_note}` : ""}`, "");
    L.push(`Queen RSS ${fmt(l.memory.rss_after_100_mb)} MB after 100 jobs, ${fmt(l.memory.rss_after_all_mb)} MB after ${l.memory.jobs} (${l.memory.delta_mb >= 0 ? "+" : ""}${fmt(l.memory.delta_mb)} MB); ${l.memory.jobs_listed} finished jobs kept.`, "");
  } else L.push(r.load_note || "Not measured in this run.", "");

  L.push("## How to read this", "", readingNotes(), "");
  return `${L.join("\n")}\n`;
}

function readingNotes(): string {
  return [
    "Each figure is the median of several runs, next to a baseline measured in the same run (paths alternate round by round). The overhead table is the cost of rbee itself: a ratio near 1.00x and a few ms of added TTFT mean the three HTTP/SSE hops are free next to the model.",
    "rbee-tiny decodes in about a millisecond per token, so it magnifies any per-token cost of the cascade; the ~100M model is the compute-bound case, closer to real models, where per-token overhead is a small share.",
    "Concurrency shows what `--parallel` buys: slots batch their decodes into one llama.cpp batch, so aggregate tokens/s grows with concurrent requests while one-request speed stays put; with one slot, extra requests queue and their TTFT grows.",
    "The peer line is what the same llama.cpp does on its own (llama-server, C++); rbee at or above 1.00x loses nothing to it.",
    "Run `npm run bench` (about 10-20 minutes; the first full run also builds llama-server once, ~15 minutes on 2 cores) or `npm run bench -- --quick` (a few minutes, rbee-tiny only, no peer build) on your machine; compare ratios, not absolute numbers, across machines.",
  ].join(" ");
}

export function renderReadmeSection(r: Results): string {
  const ts = r.targets ?? targets(r);
  const L: string[] = [];
  const m = r.machine;
  L.push(`\`npm run bench\` measures what rbee costs and how it scales on the machine at hand and writes [bench/RESULTS.md](bench/RESULTS.md) (and \`bench/results.json\`); \`npm run bench -- --quick\` is a short run (3 rounds, rbee-tiny only, no llama-server build). The latest run: ${m.cpu_model}, ${m.cores_available} cores, ${m.ram_gib} GiB, ${m.os}, node ${r.versions.node}, node-llama-cpp ${r.versions.node_llama_cpp} (llama.cpp ${r.versions.llama_cpp_commit.slice(0, 10)}), load average ${m.load_average_start[0]} at the start, ${r.date.slice(0, 10)}${r.quick ? ", quick run" : ""}.`, "");
  for (const id of Object.keys(r.overhead)) L.push(...overheadTable(r, id, false), "");
  const conc = Object.keys(r.concurrency);
  if (conc.length > 0) {
    L.push("| concurrent requests through the queen | " + conc.map((id) => `${id} --parallel 1 | ${id} --parallel 8`).join(" | ") + " |");
    L.push("| ---: | " + conc.map(() => "---: | ---:").join(" | ") + " |");
    const levels = [...new Set(conc.flatMap((id) => r.concurrency[id]!.rows.map((x) => x.concurrent)))];
    for (const n of levels) {
      L.push(`| ${n} | ` + conc.map((id) => [1, 8].map((p) => {
        const x = r.concurrency[id]!.rows.find((y) => y.parallel === p && y.concurrent === n);
        return x ? `${fmt(x.tokens_per_s, 0)} t/s, TTFT p99 ${fmt(x.ttft_p99_ms, 0)} ms` : "-";
      }).join(" | ")).join(" | ") + " |");
    }
    L.push("");
  }
  const peer = Object.entries(r.peer.comparisons).flatMap(([id, cs]) => cs.map((c) => `| ${id}, ${c.concurrent === 1 ? "single stream" : `${c.concurrent} requests at once`} | ${fmt(c.peer_tokens_per_s, 0)} | ${fmt(c.in_process_tokens_per_s, 0)} | ${fmt(c.rbee_tokens_per_s, 0)} | ${fmtRatio(c.ratio)} |`));
  if (peer.length > 0) {
    L.push("| tokens/s against llama.cpp's llama-server | llama-server | node-llama-cpp alone | rbee via the queen | rbee / llama-server |", "| --- | ---: | ---: | ---: | ---: |", ...peer, "");
  } else L.push(`llama-server peer: ${r.peer.note}.`, "");
  L.push(...targetTable(ts), "");
  L.push(
    "How to read it: every figure is a median of several runs next to a baseline measured in the same run, paths alternating round by round, so a busy machine slows both sides alike; compare the ratios rather than the absolute numbers across machines. " +
      "*In-process* is node-llama-cpp driven the way the worker drives it, in one process without HTTP: the ratio and the added TTFT of the worker, hive, queen and CLI rows are what rbee's hops cost. " +
      "rbee-tiny decodes in about a millisecond per token, so it magnifies per-token costs; the ~100M model is the compute-bound case closer to real models. " +
      "The concurrency table shows `--parallel` batching several requests into one llama.cpp batch (aggregate tokens/s rises) and requests queueing for a single slot (TTFT rises). " +
      "The peer is llama.cpp's own llama-server, built from the same llama.cpp commit, on the same GGUF and threads; the node-llama-cpp column is the library rbee's worker uses, alone in one process, so a gap between llama-server and node-llama-cpp is the library's and a gap between node-llama-cpp and rbee is rbee's. " +
      "The full figures (control plane, SSE fan-out, start-up, memory, load) are in bench/RESULTS.md.",
  );
  return `${L.join("\n")}\n`;
}
