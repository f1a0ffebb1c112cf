import test from "ava";
import { writeFile } from "node:fs/promises";
import * as path from "node:path";
import type { Heartbeat } from "../../daemons/queen/heartbeat.js";
import { DEFAULT_BEAT_MS, HiveRegistry } from "../../daemons/queen/hive-registry.js";
import { Inflight } from "../../daemons/queen/inflight.js";
import type { Teardown } from "../_helpers/cleanup.js";
import { tempDir } from "../_helpers/temp.js";

async function registry(t: Teardown, conf = ""): Promise<{ reg: HiveRegistry; clock: { ms: number }; changes: string[] }> {
  const dir = await tempDir(t, "rbee-reg-");
  await writeFile(path.join(dir, "hives.conf"), conf);
  const clock = { ms: 1_000_000 };
  const changes: string[] = [];
  const reg = new HiveRegistry({
    hivesConf: path.join(dir, "hives.conf"),
    timeoutBeats: 3,
    clock: { now: () => clock.ms },
    onChange: (id, state) => changes.push(`${id}:${state}`),
  });
  t.teardown(() => reg.dispose());
  await reg.reload();
  return { reg, clock, changes };
}

const beat = (hive_id: string, url = "http://127.0.0.1:9100"): Heartbeat => ({ hive_id, url, version: "1", devices: [], workers: [], models: [] });

test("state follows beats at the learned interval: offline after 3 missed beats (plus half a beat), online at the next", async (t) => {
  const { reg, clock, changes } = await registry(t);
  t.is(reg.state("h"), "offline");
  reg.heartbeat(beat("h"));
  t.is(reg.intervalMs("h"), DEFAULT_BEAT_MS);
  for (let i = 0; i < 4; i++) {
    clock.ms += 500;
    reg.heartbeat(beat("h"));
  }
  t.is(reg.intervalMs("h"), 500);
  clock.ms += 1750;
  t.is(reg.state("h"), "online");
  clock.ms += 1;
  t.is(reg.state("h"), "offline");
  // A timeout has no event of its own: the registry's sweep (every 250 ms) reports it.
  const until = Date.now() + 5000;
  while (!changes.includes("h:offline") && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  reg.heartbeat(beat("h"));
  t.is(reg.state("h"), "online");
  t.deepEqual(changes, ["h:online", "h:offline", "h:online"]);
});

test("an extra early beat does not shorten the interval; a long absence is not learned", async (t) => {
  const { reg, clock } = await registry(t);
  reg.heartbeat(beat("h"));
  clock.ms += 2000;
  reg.heartbeat(beat("h"));
  clock.ms += 20; // an extra beat right after a change
  reg.heartbeat(beat("h"));
  t.is(reg.intervalMs("h"), 2000);
  clock.ms += 60_000;
  reg.heartbeat(beat("h"));
  t.is(reg.intervalMs("h"), 2000);
});

test("markDown is offline at once with no workers, until the next beat", async (t) => {
  const { reg } = await registry(t);
  reg.heartbeat({ ...beat("h"), workers: [{ worker_id: "w", model: "m", state: "ready" }] });
  t.is(reg.workerCount(), 1);
  reg.markDown("h", "stopped");
  t.is(reg.state("h"), "offline");
  t.is(reg.workerCount(), 0);
  reg.heartbeat(beat("h"));
  t.is(reg.state("h"), "online");
});

test("URLs: a configured hive is reached at its HostName, 0.0.0.0 at the sender, others as reported", async (t) => {
  const { reg } = await registry(t, "Host gpu\n  HostName 10.1.2.3\n  HivePort 9100\nHost zero\n  HivePort 0\n");
  t.is(reg.url("gpu"), "http://10.1.2.3:9100");
  t.is(reg.url("zero"), undefined);
  reg.heartbeat(beat("gpu", "http://gpu-box.local:9555"));
  t.is(reg.url("gpu"), "http://10.1.2.3:9555");
  reg.heartbeat(beat("walkin", "http://0.0.0.0:9200"), "::ffff:192.168.1.9");
  t.is(reg.url("walkin"), "http://192.168.1.9:9200");
  reg.heartbeat(beat("other", "http://box:9300/"));
  t.is(reg.url("other"), "http://box:9300");
  t.deepEqual(reg.ids(), ["localhost", "gpu", "zero", "walkin", "other"]);
  t.true(reg.known("zero") && !reg.known("nope"));
});

test("waitForBeat resolves at the first beat after the given time and rejects on abort", async (t) => {
  const { reg, clock } = await registry(t);
  reg.heartbeat(beat("h"));
  const since = clock.ms + 1;
  const waiting = reg.waitForBeat("h", since, new AbortController().signal);
  clock.ms += 10;
  reg.heartbeat(beat("other"));
  reg.heartbeat(beat("h"));
  await t.notThrowsAsync(waiting);
  const ac = new AbortController();
  const never = reg.waitForBeat("h", clock.ms + 1, ac.signal);
  ac.abort(new Error("stop"));
  await t.throwsAsync(never, { message: "stop" });
});

test("in-flight jobs count per worker, move to the worker once known, and release once", (t) => {
  const f = new Inflight();
  const a = f.begin("h");
  const b = f.begin("h", "w1");
  t.deepEqual(f.of("h"), { "": 1, w1: 1 });
  a.setWorker("w1");
  t.deepEqual(f.of("h"), { w1: 2 });
  a.release();
  a.release();
  b.release();
  t.deepEqual(f.of("h"), {});
});
