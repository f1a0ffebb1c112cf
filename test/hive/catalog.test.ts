import test, { type ExecutionContext } from "ava";
import { copyFile, lstat, mkdir, readFile, readlink, stat, symlink, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { Catalog } from "../../daemons/hive/catalog.js";
import { RbeeError, type ErrorCode } from "../../shared/errors.js";
import { JobRegistry } from "../../shared/job-registry.js";
import type { Job } from "../../shared/job.js";
import { writeTinyModel } from "../../shared/rbee-tiny.js";
import { Cleanup } from "../_helpers/cleanup.js";
import { tempDir } from "../_helpers/temp.js";

// One small real GGUF (built with the rbee-tiny recipe) shared by every test; each test copies it.
const SMALL = { name: "small", embeddingLength: 32, layers: 2, heads: 2, headsKv: 1, feedForwardLength: 64, contextLength: 1024 };
const fixture = new Cleanup();
let small = "";

test.before(async () => {
  small = path.join(await tempDir(fixture, "rbee-catalog-fixture-"), "small.gguf");
  await writeTinyModel(small, SMALL);
});
test.after.always(() => fixture.run());

function newJob(t: ExecutionContext): Job {
  const registry = new JobRegistry({ actor: "rbee-hive" });
  t.teardown(() => registry.dispose());
  return registry.create({ operation: "model_import", correlationId: "corr-test" });
}

function narrations(job: Job): string[] {
  return job.events.flatMap((s) => (s.event.event === "narration" ? [s.event.data.human] : []));
}

async function rejectsCode(t: ExecutionContext, p: Promise<unknown>, code: ErrorCode): Promise<RbeeError> {
  const err = await t.throwsAsync(p);
  t.true(err instanceof RbeeError, String(err));
  t.is((err as RbeeError).code, code, (err as Error).message);
  return err as RbeeError;
}

test("an empty or missing folder lists nothing, and rbee-tiny is listed only once made", async (t) => {
  const dir = await tempDir(t);
  const catalog = new Catalog(path.join(dir, "models"));
  t.deepEqual(await catalog.list(), []);
  t.true(await catalog.has("rbee-tiny"));
  t.deepEqual(await catalog.list(), []);
});

test("get makes rbee-tiny on first use and reads its GGUF metadata", async (t) => {
  const dir = await tempDir(t);
  const catalog = new Catalog(path.join(dir, "models"));
  const info = await catalog.get("rbee-tiny");
  const file = path.join(dir, "models", "rbee-tiny.gguf");
  t.is(info.id, "rbee-tiny");
  t.is(info.architecture, "llama");
  t.is(info.layers, 4);
  t.is(info.context_length, 4096);
  t.is(info.quantization, "F16");
  t.true((info.parameters ?? 0) > 1_000_000);
  t.is(info.size_bytes, (await stat(file)).size);
  t.is(await catalog.resolve("rbee-tiny"), file);
  t.deepEqual(
    (await catalog.list()).map((m) => m.id),
    ["rbee-tiny"],
  );
  t.deepEqual(Object.keys(info).sort(), ["architecture", "context_length", "id", "layers", "parameters", "quantization", "size_bytes"]);
});

test("list shows valid models sorted by id and skips everything else without failing", async (t) => {
  const dir = await tempDir(t);
  const models = path.join(dir, "models");
  await mkdir(models);
  await copyFile(small, path.join(models, "b-model.gguf"));
  await symlink(small, path.join(models, "a-link.gguf"));
  await writeFile(path.join(models, "junk.gguf"), "<html>not a model</html>");
  await copyFile(small, path.join(models, "Upper-Case.gguf"));
  await copyFile(small, path.join(models, "c-model.gguf.part"));
  await writeFile(path.join(models, "notes.txt"), "hello");
  await symlink(path.join(dir, "gone.gguf"), path.join(models, "dangling.gguf"));
  await mkdir(path.join(models, "folder.gguf"));
  const truncated = (await readFile(small)).subarray(0, 2000);
  await writeFile(path.join(models, "truncated.gguf"), truncated);

  const catalog = new Catalog(models);
  const list = await catalog.list();
  t.deepEqual(
    list.map((m) => m.id),
    ["a-link", "b-model"],
  );
  const b = list[1];
  t.is(b?.architecture, "llama");
  t.is(b?.layers, 2);
  t.is(b?.context_length, 1024);
  t.is(b?.size_bytes, (await stat(small)).size);
  t.false(await catalog.has("c-model"), "a partial download is not a model");
  t.false(await catalog.has("dangling"));
  await rejectsCode(t, catalog.get("junk"), "NOT_GGUF");
  await rejectsCode(t, catalog.get("c-model"), "MODEL_NOT_FOUND");
});

test("a missing model is MODEL_NOT_FOUND with a message saying what to do", async (t) => {
  const dir = await tempDir(t);
  const catalog = new Catalog(dir);
  const err = await rejectsCode(t, catalog.get("nope"), "MODEL_NOT_FOUND");
  t.regex(err.message, /"nope"/);
  t.regex(err.message, /model_download/);
  await rejectsCode(t, catalog.resolve("nope"), "MODEL_NOT_FOUND");
  await rejectsCode(t, catalog.delete("nope"), "MODEL_NOT_FOUND");
  t.false(await catalog.has("nope"));
});

test("ids that are not model ids are refused before touching the disk, so nothing leaves the folder", async (t) => {
  const dir = await tempDir(t);
  const catalog = new Catalog(path.join(dir, "models"));
  for (const bad of ["../x", "/etc/passwd", "a/b", "..", "x..y", "Upper", "", ".hidden", "a\\b", "x".repeat(129)]) {
    t.throws(() => catalog.pathFor(bad), { instanceOf: RbeeError, message: /^model: / }, bad);
    await rejectsCode(t, catalog.get(bad), "INVALID_REQUEST");
    await rejectsCode(t, catalog.resolve(bad), "INVALID_REQUEST");
    await rejectsCode(t, catalog.delete(bad), "INVALID_REQUEST");
    t.false(await catalog.has(bad));
  }
  t.is(catalog.pathFor("ok.model_1-q4"), path.join(dir, "models", "ok.model_1-q4.gguf"));
});

test("delete removes a model, removes a symlink but never its target, and clears a leftover partial file", async (t) => {
  const dir = await tempDir(t);
  const models = path.join(dir, "models");
  await mkdir(models);
  await copyFile(small, path.join(models, "one.gguf"));
  await symlink(small, path.join(models, "linked.gguf"));
  await writeFile(path.join(models, "half.gguf.part"), "GGUF");
  const catalog = new Catalog(models);

  await catalog.delete("one");
  t.false(await catalog.has("one"));
  await rejectsCode(t, catalog.delete("one"), "MODEL_NOT_FOUND");

  await catalog.delete("linked");
  t.false(await catalog.has("linked"));
  t.true((await stat(small)).isFile(), "the symlink's target stays");

  await catalog.delete("half");
  await t.throwsAsync(stat(path.join(models, "half.gguf.part")), { code: "ENOENT" });
  t.deepEqual(await catalog.list(), []);
});

test("delete is refused while the id is being downloaded", async (t) => {
  const dir = await tempDir(t);
  const catalog = new Catalog(dir);
  const release = catalog.beginDownload("busy");
  t.throws(() => catalog.beginDownload("busy"), { message: /already being downloaded/ });
  await rejectsCode(t, catalog.delete("busy"), "INVALID_REQUEST");
  release();
  await rejectsCode(t, catalog.delete("busy"), "MODEL_NOT_FOUND");
});

test("import links a GGUF into the catalog under an id made from its file name", async (t) => {
  const dir = await tempDir(t);
  const outside = path.join(dir, "elsewhere");
  await mkdir(outside);
  const src = path.join(outside, "My-Model.Q8_0.GGUF");
  await copyFile(small, src);
  const catalog = new Catalog(path.join(dir, "models"));
  const job = newJob(t);

  const info = await catalog.import(job, src);
  t.is(info.id, "my-model.q8_0");
  t.is(info.architecture, "llama");
  const entry = path.join(dir, "models", "my-model.q8_0.gguf");
  t.true((await lstat(entry)).isSymbolicLink());
  t.is(await readlink(entry), src);
  t.deepEqual(
    (await catalog.list()).map((m) => m.id),
    ["my-model.q8_0"],
  );
  t.true(narrations(job).some((h) => h.includes("Imported my-model.q8_0")));

  const named = await catalog.import(undefined, src, "renamed");
  t.is(named.id, "renamed");
  t.is(await catalog.resolve("renamed"), path.join(dir, "models", "renamed.gguf"));
});

test("import through a symlink that points outside is fine; the id still cannot escape", async (t) => {
  const dir = await tempDir(t);
  const link = path.join(dir, "link.gguf");
  await symlink(small, link);
  const catalog = new Catalog(path.join(dir, "models"));
  t.is((await catalog.import(undefined, link)).id, "link");
  for (const name of ["../escape", "/abs", "a/b", "Caps"]) {
    const err = await rejectsCode(t, catalog.import(undefined, link, name), "INVALID_REQUEST");
    t.regex(err.message, /^name: /);
  }
  await t.throwsAsync(stat(path.join(dir, "escape.gguf")), { code: "ENOENT" });
});

test("import refuses non-GGUF files, missing paths, folders, relative paths, bad names and taken ids", async (t) => {
  const dir = await tempDir(t);
  const catalog = new Catalog(path.join(dir, "models"));
  const text = path.join(dir, "notes.gguf");
  await writeFile(text, "just some text, not a model");
  await rejectsCode(t, catalog.import(undefined, text), "NOT_GGUF");
  t.false(await catalog.has("notes"));
  t.deepEqual(await catalog.list(), []);

  let err = await rejectsCode(t, catalog.import(undefined, path.join(dir, "missing.gguf")), "INVALID_REQUEST");
  t.regex(err.message, /^path: .*does not exist/);
  err = await rejectsCode(t, catalog.import(undefined, dir), "INVALID_REQUEST");
  t.regex(err.message, /^path: .*not a regular file/);
  err = await rejectsCode(t, catalog.import(undefined, "relative/model.gguf"), "INVALID_REQUEST");
  t.regex(err.message, /^path: .*absolute/);

  const odd = path.join(dir, "has space.gguf");
  await copyFile(small, odd);
  err = await rejectsCode(t, catalog.import(undefined, odd), "INVALID_REQUEST");
  t.regex(err.message, /^name: .*pass "name"/);

  await catalog.import(undefined, small, "taken");
  err = await rejectsCode(t, catalog.import(undefined, small, "taken"), "INVALID_REQUEST");
  t.regex(err.message, /already in the catalog/);
  err = await rejectsCode(t, catalog.import(undefined, small, "rbee-tiny"), "INVALID_REQUEST");
  t.regex(err.message, /already in the catalog/);
});

test("list notices a model file replaced in place", async (t) => {
  const dir = await tempDir(t);
  const catalog = new Catalog(dir);
  const file = path.join(dir, "m.gguf");
  await copyFile(small, file);
  t.is((await catalog.get("m")).layers, 2);
  await writeTinyModel(file, { ...SMALL, layers: 3 });
  t.is((await catalog.get("m")).layers, 3);
  t.is((await catalog.list())[0]?.layers, 3);
});
