/**
 * Faults of the machine around the daemons, done for real: ports already taken, and a models
 * folder that cannot be written (as root, where chmod stops nothing: a folder that is a file, and
 * a file-size limit, ulimit -f, that makes every write past 1 MiB fail with EFBIG).
 */
import test from "ava";
import { createServer } from "node:http";
import { readFile, readdir, writeFile, mkdir } from "node:fs/promises";
import * as path from "node:path";
import type { Teardown } from "../_helpers/cleanup.js";
import { daemonsBuilt } from "../_helpers/daemon.js";
import { holdPort } from "../_helpers/process.js";
import { makeHome, tinyModel } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { hiveStatus, payload, runJob, spawnDaemon, startHive, startQueen } from "./e2e-helpers.js";

const run = daemonsBuilt ? test : test.skip;

/** Serves one file over HTTP at /<name>. */
async function serveFile(t: Teardown, file: string, name: string): Promise<string> {
  const bytes = await readFile(file);
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-length": bytes.length });
    res.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/${name}`;
}

run("a daemon started on a port already taken exits 1 with one clear line, for all three", async (t) => {
  const home = await makeHome(t);
  const port = await holdPort(t);
  const model = await tinyModel(t);
  const env = { RBEE_HOME: home };
  const cases = [
    ["queen", "queen-rbee", ["--port", String(port)]],
    ["hive", "rbee-hive", ["--port", String(port)]],
    ["worker", "llm-worker-rbee", ["--port", String(port), "--model", model, "--device", "cpu"]],
  ] as const;
  await Promise.all(cases.map(async ([daemon, name, args]) => {
    const p = await spawnDaemon(t, daemon, [...args], { env, noWait: true });
    t.is(await p.exited, 1, `${name}: ${p.output()}`);
    const lines = p.output().trim().split("\n");
    t.is(lines.length, 1, `${name} says one line: ${p.output()}`);
    t.is(lines[0], `${name}: cannot listen: port ${port} on 127.0.0.1 is already in use (pick another with --port, or --port 0 for a free one).`);
  }));
});

run("a models folder that cannot be written: model_download through the queen fails DOWNLOAD_FAILED saying why, and leaves no partial file", async (t) => {
  const home = await makeHome(t);
  const queen = await startQueen(t, home);
  const url = await serveFile(t, await tinyModel(t), "Big-Model.gguf");

  // 1. The models folder is a regular file.
  const fileHome = await makeHome(t);
  await writeFile(path.join(fileHome, "models"), "not a folder\n");
  await startHive(t, fileHome, "nofolder", queen.url);
  // 2. Every file the hive writes stops at 1 MiB (ulimit -f counts 512-byte blocks in sh): a disk that fills up.
  const fullHome = await makeHome(t);
  await mkdir(path.join(fullHome, "models"));
  await startHive(t, fullHome, "full", queen.url, [], { wrap: ["/bin/sh", "-c", 'ulimit -f 2048 && exec "$0" "$@"'] });
  await waitFor("both hives online", async () => (await hiveStatus(queen.url, "nofolder"))?.state === "online" && (await hiveStatus(queen.url, "full"))?.state === "online", 30_000);

  const notFolder = await runJob(queen.url, { operation: "model_download", hive_id: "nofolder", model: url });
  t.like(notFolder.end, { status: "failed", error: { code: "DOWNLOAD_FAILED" } });
  t.log(notFolder.end.error?.message);
  t.true(notFolder.end.error?.message.includes(path.join(fileHome, "models")), notFolder.end.error?.message);
  t.regex(notFolder.end.error?.message ?? "", /is a file, not a folder/);
  t.is(await readFile(path.join(fileHome, "models"), "utf8"), "not a folder\n", "the file is left as it was");
  const listed = await runJob(queen.url, { operation: "model_list", hive_id: "nofolder" });
  t.is(listed.end.status, "completed");
  t.deepEqual(payload<{ models: unknown[] }>(listed, "model_list").models, []);

  const infer = await runJob(queen.url, { operation: "infer", hive_id: "nofolder", prompt: "no room", max_tokens: 2 });
  t.is(infer.end.status, "failed");
  t.regex(infer.end.error?.message ?? "", /models folder .* is a file, not a folder/, "rbee-tiny cannot be made there, said plainly");

  const full = await runJob(queen.url, { operation: "model_download", hive_id: "full", model: url });
  t.like(full.end, { status: "failed", error: { code: "DOWNLOAD_FAILED" } });
  t.log(full.end.error?.message);
  t.regex(full.end.error?.message ?? "", /EFBIG/);
  t.true(full.end.error?.message.includes(path.join(fullHome, "models")), full.end.error?.message);
  const progress = full.events.filter((e) => e.event === "progress");
  t.true(progress.length > 0, "it had begun");
  t.deepEqual(await readdir(path.join(fullHome, "models")), [], "no partial file is left");
  const after = await runJob(queen.url, { operation: "model_list", hive_id: "full" });
  t.deepEqual(payload<{ models: unknown[] }>(after, "model_list").models, []);
});
