/**
 * GET /metrics on the real queen, hive and worker of one cascade (with RBEE_TOKEN): Prometheus text that
 * parses, the families each tier promises (CONTRACT.md section 5), and values that move when jobs run.
 */
import test from "ava";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { waitFor } from "../_helpers/wait.js";
import { cascadeForFile, getText } from "../cli/helpers/cascade.js";

const serial = daemonsBuilt ? test.serial : test.skip;
const TOKEN = "ops-metrics-secret";

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Family { name: string; type: string; help: string; samples: Sample[] }
type Scrape = Map<string, Family>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function parseLabels(s: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < s.length) {
    const eq = s.indexOf("=", i);
    const key = s.slice(i, eq).trim();
    if (eq < 0 || !NAME.test(key) || s[eq + 1] !== '"') throw new Error(`bad label in: ${line}`);
    let v = "";
    let j = eq + 2;
    for (; j < s.length && s[j] !== '"'; j++) {
      if (s[j] === "\\") {
        const next = s[++j];
        v += next === "n" ? "\n" : (next ?? "");
      } else v += s[j];
    }
    if (j >= s.length) throw new Error(`unterminated label value in: ${line}`);
    labels[key] = v;
    i = j + 1;
    if (s[i] === ",") i++;
  }
  return labels;
}

// Prometheus reads these with Go's ParseFloat, case-insensitively (prom-client writes an empty event-loop histogram's mean as "Nan").
const number = (v: string): number => (/^\+?inf$/i.test(v) ? Infinity : /^-inf$/i.test(v) ? -Infinity : /^nan$/i.test(v) ? NaN : Number(v));

/** Prometheus text format 0.0.4: `# HELP`, `# TYPE`, then `name{labels} value [timestamp]`; anything else throws. */
export function parseProm(text: string): Scrape {
  const fams: Scrape = new Map();
  const fam = (name: string): Family => {
    let f = fams.get(name);
    if (!f) fams.set(name, (f = { name, type: "", help: "", samples: [] }));
    return f;
  };
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      if (meta[1] === "HELP") fam(meta[2] as string).help = meta[3] ?? "";
      else fam(meta[2] as string).type = meta[3] ?? "";
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const value = number(m[3] as string);
    if (Number.isNaN(value) && !/^nan$/i.test(m[3] as string)) throw new Error(`bad value in: ${line}`);
    const name = m[1] as string;
    const base = fams.has(name) ? name : name.replace(/_(bucket|sum|count|created)$/, "");
    const f = fams.get(base);
    if (!f?.type) throw new Error(`sample before its # TYPE: ${line}`);
    f.samples.push({ name, labels: parseLabels(m[2] ?? "", line), value });
  }
  return fams;
}

const matches = (s: Sample, labels: Record<string, string>) => Object.entries(labels).every(([k, v]) => s.labels[k] === v);

/** Sum of the samples of `name` (a family, or its _count/_sum/_bucket) with these labels; 0 when none yet. */
function val(m: Scrape, name: string, labels: Record<string, string> = {}): number {
  const base = m.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
  const f = m.get(base);
  if (!f) throw new Error(`metric ${base} is missing`);
  return f.samples.filter((s) => s.name === name && matches(s, labels)).reduce((a, s) => a + s.value, 0);
}

/** Each series of a histogram: cumulative buckets ending in +Inf equal to _count. */
function checkHistogram(m: Scrape, name: string): number {
  const f = m.get(name);
  if (f?.type !== "histogram") throw new Error(`${name} is not a histogram`);
  const series = new Map<string, Sample[]>();
  for (const s of f.samples.filter((x) => x.name === `${name}_bucket`)) {
    const { le: _le, ...rest } = s.labels;
    const key = JSON.stringify(rest);
    series.set(key, [...(series.get(key) ?? []), s]);
  }
  for (const [key, buckets] of series) {
    const values = buckets.map((b) => b.value);
    if (values.some((v, i) => i > 0 && v < (values[i - 1] as number))) throw new Error(`${name}${key}: buckets not cumulative`);
    const inf = buckets.find((b) => b.labels["le"] === "+Inf");
    if (!inf || inf.value !== val(m, `${name}_count`, JSON.parse(key) as Record<string, string>)) throw new Error(`${name}${key}: +Inf bucket != _count`);
  }
  return series.size;
}

const urls: Record<"queen" | "hive" | "worker", string> = { queen: "", hive: "", worker: "" };
let workerPid = 0;
const c = cascadeForFile({ token: TOKEN }, async (up, w) => {
  const hive = await up.localhost();
  Object.assign(urls, { queen: up.url, hive: hive?.url, worker: w.url });
  workerPid = w.pid;
});

async function scrape(tier: keyof typeof urls): Promise<Scrape> {
  const r = await getText(`${urls[tier]}/metrics`, c.auth);
  if (r.status !== 200) throw new Error(`${tier} /metrics: ${r.status} ${r.body}`);
  return parseProm(r.body);
}
const scrapeAll = async () => ({ queen: await scrape("queen"), hive: await scrape("hive"), worker: await scrape("worker") });

/** Scrapes until `check` holds (counters are bumped as jobs end, heartbeats move gauges); returns the last scrape. */
async function until(check: (s: Awaited<ReturnType<typeof scrapeAll>>) => boolean, what: string, ms = 20_000) {
  let last = await scrapeAll();
  await waitFor(what, async () => check((last = await scrapeAll())), ms);
  return last;
}


serial("every daemon serves /metrics only with the bearer token; /health stays open", async (t) => {
  for (const [tier, url] of Object.entries(urls)) {
    const none = await getText(`${url}/metrics`);
    t.is(none.status, 401, `${tier} without a token`);
    t.regex(none.body, /"code":"UNAUTHORIZED"/, tier);
    t.is((await getText(`${url}/metrics`, { authorization: "Bearer wrong" })).status, 401, `${tier} with a wrong token`);
    const ok = await getText(`${url}/metrics`, c.auth);
    t.is(ok.status, 200, tier);
    t.regex(ok.type, /^text\/plain; version=0\.0\.4/, tier);
    t.is((await getText(`${url}/health`)).status, 200, `${tier} /health`);
  }
});

serial("the text parses; each tier has its families with HELP and TYPE, and the process defaults", async (t) => {
  const want: Record<keyof typeof urls, [string, string][]> = {
    queen: [["rbee_queen_hives", "gauge"], ["rbee_queen_workers", "gauge"], ["rbee_queen_queue", "gauge"]],
    hive: [["rbee_hive_download_bytes_total", "counter"], ["rbee_hive_worker_spawns_total", "counter"], ["rbee_hive_worker_crashes_total", "counter"], ["rbee_hive_workers", "gauge"]],
    worker: [
      ["rbee_worker_tokens_generated_total", "counter"], ["rbee_worker_time_to_first_token_seconds", "histogram"], ["rbee_worker_tokens_per_second", "histogram"],
      ["rbee_worker_busy_slots", "gauge"], ["rbee_worker_model_load_seconds", "gauge"],
    ],
  };
  const every: [string, string][] = [
    ["rbee_jobs_total", "counter"], ["rbee_job_duration_seconds", "histogram"], ["process_cpu_user_seconds_total", "counter"],
    ["process_resident_memory_bytes", "gauge"], ["nodejs_heap_size_used_bytes", "gauge"], ["nodejs_eventloop_lag_seconds", "gauge"],
  ];
  const service = { queen: "queen-rbee", hive: "rbee-hive", worker: "llm-worker-rbee" };
  const missing: string[] = [];
  for (const tier of ["queen", "hive", "worker"] as const) {
    const m = await scrape(tier);
    for (const [name, type] of [...every, ...want[tier]]) {
      const f = m.get(name);
      if (!f) missing.push(`${tier}: ${name}`);
      else {
        t.is(f.type, type, `${tier} ${name}`);
        t.true(f.help.length > 0, `${tier} ${name} has HELP`);
      }
    }
    t.true([...m.values()].every((f) => f.samples.every((s) => s.labels["service"] === service[tier])), `${tier}: every sample says service="${service[tier]}"`);
    t.true(checkHistogram(m, "rbee_job_duration_seconds") > 0, tier);
    t.true(val(m, "rbee_jobs_total", { operation: "infer", status: "completed" }) >= 1, `${tier} counted the warm-up infer`);
  }
  t.deepEqual(missing, [], `missing metrics: ${missing.join(", ")}`);
  const s = await until((x) => val(x.queen, "rbee_queen_workers") >= 1, "the worker in the queen's heartbeat data");
  t.is(val(s.queen, "rbee_queen_hives", { state: "online" }), 1);
  t.true(val(s.hive, "rbee_hive_worker_spawns_total", { status: "ok" }) >= 1);
  t.is(val(s.hive, "rbee_hive_workers", { state: "ready" }), 1);
  t.true(val(s.worker, "rbee_worker_model_load_seconds") > 0);
  t.log(`worker model load ${val(s.worker, "rbee_worker_model_load_seconds").toFixed(3)} s`);
});

serial("an infer moves jobs, durations, tokens, time to first token and tokens/s on every tier", async (t) => {
  const b = await scrapeAll();
  const done = { operation: "infer", status: "completed" };
  const r = await c.run({ operation: "infer", prompt: "count the bees", max_tokens: 8, ignore_eos: true });
  t.is(r.end.status, "completed");
  const a = await until(
    (x) => (["queen", "hive", "worker"] as const).every((tier) => val(x[tier], "rbee_jobs_total", done) === val(b[tier], "rbee_jobs_total", done) + 1),
    "one more completed infer on every tier",
  );
  for (const tier of ["queen", "hive", "worker"] as const) {
    t.is(val(a[tier], "rbee_job_duration_seconds_count", done) - val(b[tier], "rbee_job_duration_seconds_count", done), 1, tier);
    t.true(val(a[tier], "rbee_job_duration_seconds_sum", done) > val(b[tier], "rbee_job_duration_seconds_sum", done), tier);
    checkHistogram(a[tier], "rbee_job_duration_seconds");
  }
  t.is(val(a.worker, "rbee_worker_tokens_generated_total") - val(b.worker, "rbee_worker_tokens_generated_total"), 8);
  t.is(val(a.worker, "rbee_worker_time_to_first_token_seconds_count") - val(b.worker, "rbee_worker_time_to_first_token_seconds_count"), 1);
  t.is(val(a.worker, "rbee_worker_tokens_per_second_count") - val(b.worker, "rbee_worker_tokens_per_second_count"), 1);
  checkHistogram(a.worker, "rbee_worker_time_to_first_token_seconds");
  checkHistogram(a.worker, "rbee_worker_tokens_per_second");
  const ttft = val(a.worker, "rbee_worker_time_to_first_token_seconds_sum") - val(b.worker, "rbee_worker_time_to_first_token_seconds_sum");
  const tps = val(a.worker, "rbee_worker_tokens_per_second_sum") - val(b.worker, "rbee_worker_tokens_per_second_sum");
  t.true(ttft > 0 && tps > 0);
  t.log(`this infer: worker ttft ${(ttft * 1000).toFixed(1)} ms, ${tps.toFixed(0)} tokens/s; end.timing ${JSON.stringify(r.end.timing)}`);
});

serial("a running job shows in busy slots, the queen's queue and busy workers; its cancel is counted on every tier", async (t) => {
  const cancelled = { operation: "infer", status: "cancelled" };
  const b = await scrapeAll();
  const created = await c.client.create({ operation: "infer", prompt: "go on and on", max_tokens: 100_000, ignore_eos: true });
  const stream = c.client.stream(created.job_id);
  for await (const e of stream) if (e.event === "token") break;
  const busy = await until((x) => val(x.worker, "rbee_worker_busy_slots") === 1 && val(x.hive, "rbee_hive_workers", { state: "busy" }) === 1, "a busy slot and a busy worker");
  t.is(val(busy.queen, "rbee_queen_queue"), 1);
  await c.client.cancel(created.job_id);
  const after = await until(
    (x) =>
      (["queen", "hive", "worker"] as const).every((tier) => val(x[tier], "rbee_jobs_total", cancelled) === val(b[tier], "rbee_jobs_total", cancelled) + 1) &&
      val(x.worker, "rbee_worker_busy_slots") === 0,
    "the cancel counted on every tier and the slot free",
  );
  t.is(val(after.queen, "rbee_queen_queue"), 0);
  t.is(val(after.hive, "rbee_hive_workers", { state: "busy" }), 0);
});

serial("a download counts its bytes on the hive; a killed worker counts as a crash", async (t) => {
  const file = join(c.home, "models", "rbee-tiny.gguf");
  const size = (await stat(file)).size;
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const b = await scrapeAll();
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/tiny-copy.gguf`;
  const r = await c.run({ operation: "model_download", model: url });
  t.is(r.end.status, "completed", JSON.stringify(r.end));
  const a = await until((x) => val(x.hive, "rbee_hive_download_bytes_total") > val(b.hive, "rbee_hive_download_bytes_total"), "download bytes");
  t.is(val(a.hive, "rbee_hive_download_bytes_total") - val(b.hive, "rbee_hive_download_bytes_total"), size);
  t.is(val(a.hive, "rbee_jobs_total", { operation: "model_download", status: "completed" }), 1);

  // The worker is gone after this, so only the hive is scraped from here on.
  process.kill(workerPid, "SIGKILL");
  let hive = await scrape("hive");
  await waitFor("the crash counted", async () => val((hive = await scrape("hive")), "rbee_hive_worker_crashes_total") === val(b.hive, "rbee_hive_worker_crashes_total") + 1, 20_000);
  t.is(val(hive, "rbee_hive_workers", { state: "ready" }), 0);
});
