import test, { type ExecutionContext } from "ava";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, stat, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { Catalog } from "../../daemons/hive/catalog.js";
import { downloadModel } from "../../daemons/hive/download.js";
import { RbeeError, type ErrorCode } from "../../shared/errors.js";
import { encodeGguf, gguf } from "../../shared/gguf/writer.js";
import { JobRegistry } from "../../shared/job-registry.js";
import type { Job } from "../../shared/job.js";
import type { EventDataMap } from "../../shared/protocol.js";
import { freePort } from "../_helpers/process.js";
import { tempDir } from "../_helpers/temp.js";

// A real 2 MiB GGUF: a llama header and one F32 tensor of deterministic values.
const MODEL = encodeGguf({
  metadata: {
    "general.architecture": gguf.string("llama"),
    "llama.context_length": gguf.uint32(2048),
    "llama.block_count": gguf.uint32(2),
  },
  tensors: [{ name: "w", shape: [1024, 512], type: "F32", data: Float32Array.from({ length: 1024 * 512 }, (_, i) => (i % 251) / 251) }],
});
const CHUNK = 64 * 1024;

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTP server on port 0; records every request's path and Range header. */
async function serve(t: ExecutionContext, handler: Handler): Promise<{ base: string; host: string; requests: { url: string; range?: string }[] }> {
  const requests: { url: string; range?: string }[] = [];
  const server = createServer((req, res) => {
    requests.push({ url: req.url ?? "", ...(req.headers.range ? { range: req.headers.range } : {}) });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const { port } = server.address() as AddressInfo;
  return { base: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}`, requests };
}

/** Sends `body` in chunks, `delayMs` apart (0: as fast as the socket takes them); stops if the client leaves. */
async function sendChunks(res: ServerResponse, body: Buffer, delayMs = 0, stopAt = body.length): Promise<void> {
  for (let off = 0; off < stopAt && !res.destroyed; off += CHUNK) {
    const piece = body.subarray(off, Math.min(off + CHUNK, stopAt));
    if (!res.write(piece)) await drainOrClose(res);
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  }
}

function drainOrClose(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done).off("close", done);
      resolve();
    };
    res.on("drain", done).on("close", done);
  });
}

/** Serves MODEL at any path, honouring `Range: bytes=N-` with 206. */
const rangeServer: Handler = (req, res) => {
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
  if (m) {
    const start = Number(m[1]);
    if (start >= MODEL.length) {
      res.writeHead(416, { "content-range": `bytes */${MODEL.length}` }).end();
      return;
    }
    res.writeHead(206, { "content-length": MODEL.length - start, "content-range": `bytes ${start}-${MODEL.length - 1}/${MODEL.length}` });
    res.end(MODEL.subarray(start));
    return;
  }
  res.writeHead(200, { "content-length": MODEL.length, "content-type": "application/octet-stream" });
  res.end(MODEL);
};

async function setup(t: ExecutionContext): Promise<{ dir: string; catalog: Catalog; job: Job; registry: JobRegistry }> {
  const dir = await tempDir(t, "rbee-download-");
  const registry = new JobRegistry({ actor: "rbee-hive" });
  t.teardown(() => registry.dispose());
  const job = registry.create({ operation: "model_download", correlationId: "corr-test" });
  return { dir, catalog: new Catalog(path.join(dir, "models")), job, registry };
}

const progressOf = (job: Job): EventDataMap["progress"][] =>
  job.events.flatMap((s) => (s.event.event === "progress" ? [s.event.data] : []));
const narrationOf = (job: Job): string[] => job.events.flatMap((s) => (s.event.event === "narration" ? [s.event.data.human] : []));

async function rejectsCode(t: ExecutionContext, p: Promise<unknown>, code: ErrorCode): Promise<RbeeError> {
  const err = await t.throwsAsync(p);
  t.true(err instanceof RbeeError, String(err));
  t.is((err as RbeeError).code, code, (err as Error).message);
  return err as RbeeError;
}

/** Polls a predicate until it holds or the deadline passes. */
async function until(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test("a download streams into the catalog with throttled byte progress and narration", async (t) => {
  const { catalog, job, dir } = await setup(t);
  const { base, host } = await serve(t, (_req, res) => {
    res.writeHead(200, { "content-length": MODEL.length });
    void sendChunks(res, MODEL, 15).then(() => res.end());
  });
  const started = performance.now();
  const info = await downloadModel(job, catalog, `${base}/models/Test-Model.gguf`, undefined, { progressIntervalMs: 100 });
  const elapsed = performance.now() - started;

  t.is(info.id, "test-model");
  t.is(info.architecture, "llama");
  t.is(info.layers, 2);
  t.is(info.size_bytes, MODEL.length);
  t.true((await readFile(path.join(dir, "models", "test-model.gguf"))).equals(MODEL));
  t.deepEqual(await readdir(path.join(dir, "models")), ["test-model.gguf"], "no partial file is left");
  t.deepEqual(
    (await catalog.list()).map((m) => m.id),
    ["test-model"],
  );

  const progress = progressOf(job);
  t.true(progress.length >= 3, `${progress.length} progress events`);
  t.true(progress.length < MODEL.length / CHUNK, "far fewer events than chunks");
  // at most one event per 100 ms, plus the first and the last
  t.true(progress.length <= Math.ceil(elapsed / 100) + 2, `${progress.length} events in ${elapsed.toFixed(0)} ms`);
  for (const p of progress) {
    t.like(p, { action: "model_download", target: "test-model", unit: "bytes", total: MODEL.length });
  }
  const dones = progress.map((p) => p.done);
  t.deepEqual(dones, [...dones].sort((a, b) => a - b), "done only grows");
  t.is(dones[0], 0);
  t.is(dones.at(-1), MODEL.length);

  const said = narrationOf(job);
  t.log(`${progress.length} progress events in ${elapsed.toFixed(0)} ms; narration: ${said.join(" | ")}`);
  t.true(said.some((h) => h.includes(`from ${host}`) && h.includes("2.00 MiB")), said.join(" | "));
  t.true(said.some((h) => h.startsWith("Downloaded test-model")), said.join(" | "));
});

test("a dropped connection leaves a partial file that the next run resumes with Range", async (t) => {
  const { catalog, job, dir, registry } = await setup(t);
  let first = true;
  const half = Math.floor(MODEL.length / 2);
  const part = path.join(dir, "models", "resume-me.gguf.part");
  const { base, host, requests } = await serve(t, (req, res) => {
    if (first) {
      first = false;
      res.writeHead(200, { "content-length": MODEL.length });
      // The socket is dropped once the client has written the first half, so the test knows what was kept.
      void sendChunks(res, MODEL, 0, half)
        .then(() => until("half on disk", async () => existsSync(part) && (await stat(part)).size >= half))
        .finally(() => res.socket?.destroy());
      return;
    }
    rangeServer(req, res);
  });
  const url = `${base}/m/resume-me.gguf`;
  const err = await rejectsCode(t, downloadModel(job, catalog, url), "DOWNLOAD_FAILED");
  t.true(err.message.includes(host), err.message);
  t.regex(err.message, /resume/);
  const kept = (await stat(part)).size;
  t.is(kept, half);
  t.deepEqual(await catalog.list(), [], "a partial file is never listed");

  const job2 = registry.create({ operation: "model_download", correlationId: "corr-test" });
  const info = await downloadModel(job2, catalog, url);
  t.is(info.id, "resume-me");
  t.is(requests[1]?.range, `bytes=${kept}-`);
  t.true((await readFile(path.join(dir, "models", "resume-me.gguf"))).equals(MODEL), "byte-identical after resume");
  t.false(existsSync(part));
  t.true(narrationOf(job2).some((h) => h.includes(`Resuming resume-me at ${kept} bytes`)), narrationOf(job2).join(" | "));
  const progress = progressOf(job2);
  t.is(progress[0]?.done, kept);
  t.is(progress.at(-1)?.done, MODEL.length);
});

test("a 200 answer to a range request restarts from zero", async (t) => {
  const { catalog, job, dir } = await setup(t);
  const { base, requests } = await serve(t, (_req, res) => {
    res.writeHead(200, { "content-length": MODEL.length });
    res.end(MODEL);
  });
  await mkdir(path.join(dir, "models"));
  await writeFile(path.join(dir, "models", "restart.gguf.part"), Buffer.alloc(1000, 0x41));
  const info = await downloadModel(job, catalog, `${base}/restart.gguf`);
  t.is(requests[0]?.range, "bytes=1000-");
  t.is(info.size_bytes, MODEL.length);
  t.true((await readFile(path.join(dir, "models", "restart.gguf"))).equals(MODEL));
  t.true(narrationOf(job).some((h) => h.includes("starting restart again from zero")));
});

test("416 on a resume means the partial file is complete", async (t) => {
  const { catalog, job, dir } = await setup(t);
  const { base, requests } = await serve(t, rangeServer);
  await mkdir(path.join(dir, "models"));
  await writeFile(path.join(dir, "models", "whole.gguf.part"), MODEL);
  const info = await downloadModel(job, catalog, `${base}/whole.gguf`);
  t.is(requests.length, 1);
  t.is(requests[0]?.range, `bytes=${MODEL.length}-`);
  t.is(info.size_bytes, MODEL.length);
  t.true((await readFile(path.join(dir, "models", "whole.gguf"))).equals(MODEL));
});

test("a body that is not GGUF is NOT_GGUF and nothing is left behind", async (t) => {
  const { catalog, job, dir } = await setup(t);
  const page = Buffer.from(`<!DOCTYPE html><html>${"x".repeat(1_000_000)}</html>`);
  const { base } = await serve(t, (_req, res) => {
    res.writeHead(200, { "content-type": "text/html", "content-length": page.length });
    void sendChunks(res, page).then(() => res.end());
  });
  const err = await rejectsCode(t, downloadModel(job, catalog, `${base}/login.gguf`), "NOT_GGUF");
  t.regex(err.message, /not a GGUF/);
  t.log(err.message);
  t.deepEqual(await readdir(path.join(dir, "models")), []);
  t.deepEqual(await catalog.list(), []);
});

test("HTTP errors are DOWNLOAD_FAILED naming the status and the host", async (t) => {
  const { catalog, job, dir } = await setup(t);
  const { base, host } = await serve(t, (_req, res) => {
    res.writeHead(404, { "content-type": "text/plain" }).end("Entry not found");
  });
  const err = await rejectsCode(t, downloadModel(job, catalog, `${base}/missing.gguf`), "DOWNLOAD_FAILED");
  t.true(err.message.includes(`HTTP 404 from ${host}`), err.message);
  t.deepEqual(await readdir(path.join(dir, "models")), []);
});

test("redirects are followed, and a body without Content-Length has a null total until the end", async (t) => {
  const { catalog, job } = await setup(t);
  const { base, requests } = await serve(t, (req, res) => {
    if (req.url === "/start.gguf") {
      res.writeHead(302, { location: "/cdn/blob" }).end();
      return;
    }
    res.writeHead(200, { "transfer-encoding": "chunked" });
    void sendChunks(res, MODEL).then(() => res.end());
  });
  const info = await downloadModel(job, catalog, `${base}/start.gguf`);
  t.is(info.id, "start");
  t.deepEqual(
    requests.map((r) => r.url),
    ["/start.gguf", "/cdn/blob"],
  );
  const progress = progressOf(job);
  t.is(progress[0]?.total, null);
  t.like(progress.at(-1), { done: MODEL.length, total: MODEL.length });
});

test("cancelling stops the download and keeps the partial file for a resume", async (t) => {
  const { catalog, job, dir } = await setup(t);
  const { base } = await serve(t, (_req, res) => {
    res.writeHead(200, { "content-length": MODEL.length });
    void sendChunks(res, MODEL, 200); // slow: about 6 s in all, far longer than the test waits
  });
  const running = downloadModel(job, catalog, `${base}/slow.gguf`, "slow");
  const part = path.join(dir, "models", "slow.gguf.part");
  await until("some bytes on disk", async () => existsSync(part) && (await stat(part)).size > 0);
  t.true(catalog.isDownloading("slow"));
  await rejectsCode(t, downloadModel(job, catalog, `${base}/other.gguf`, "slow"), "INVALID_REQUEST");
  job.cancel();
  await rejectsCode(t, running, "CANCELLED");
  t.true((await stat(part)).size > 0, "the partial file stays");
  t.false(catalog.isDownloading("slow"));
  t.deepEqual(await catalog.list(), []);
  t.true(narrationOf(job).some((h) => h.includes("running it again resumes")));
  t.log(narrationOf(job).join(" | "));
});

test("a model already in the catalog completes at once without a request", async (t) => {
  const { catalog, job, dir } = await setup(t);
  const { base, requests } = await serve(t, rangeServer);
  await mkdir(path.join(dir, "models"));
  await writeFile(path.join(dir, "models", "have.gguf"), MODEL);
  const info = await downloadModel(job, catalog, `${base}/have.gguf`);
  t.is(info.id, "have");
  t.is(requests.length, 0);
  t.true(narrationOf(job).some((h) => h.includes("already in the catalog")));
});

test("an unreachable host is DOWNLOAD_FAILED naming it", async (t) => {
  const { catalog, job } = await setup(t);
  const port = await freePort();
  const err = await rejectsCode(t, downloadModel(job, catalog, `http://127.0.0.1:${port}/x.gguf`), "DOWNLOAD_FAILED");
  t.true(err.message.includes(`cannot reach 127.0.0.1:${port}`), err.message);
  t.regex(err.message, /ECONNREFUSED/);
});

test("an unusable models folder is DOWNLOAD_FAILED with the OS reason", async (t) => {
  const { job, dir } = await setup(t);
  const { base } = await serve(t, rangeServer);
  await writeFile(path.join(dir, "a-file"), "not a folder");
  const catalog = new Catalog(path.join(dir, "a-file", "models"));
  const err = await rejectsCode(t, downloadModel(job, catalog, `${base}/x.gguf`), "DOWNLOAD_FAILED");
  t.regex(err.message, /ENOTDIR/);
  t.true(err.message.includes(catalog.modelsDir), err.message);
});

test("a full disk is DOWNLOAD_FAILED with the OS reason and leaves no partial file", async (t) => {
  if (!existsSync("/dev/full")) {
    t.pass("no /dev/full on this system");
    return;
  }
  const { catalog, job, dir } = await setup(t);
  const { base } = await serve(t, rangeServer);
  await mkdir(path.join(dir, "models"));
  // The partial file points at /dev/full, so every write fails with ENOSPC as on a full disk.
  await symlink("/dev/full", path.join(dir, "models", "full.gguf.part"));
  const err = await rejectsCode(t, downloadModel(job, catalog, `${base}/full.gguf`), "DOWNLOAD_FAILED");
  t.regex(err.message, /ENOSPC/);
  t.deepEqual(await readdir(path.join(dir, "models")), []);
  t.deepEqual(await catalog.list(), []);
});
