/** Throw-away folders: plain ones, RBEE_HOMEs for daemons, and rbee-tiny; all gone after the test. */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { RBEE_TINY_FILE, writeTinyModel } from "../../shared/rbee-tiny.js";
import type { Teardown } from "./cleanup.js";
import { killUnder } from "./process.js";

/** A fresh folder under the OS temp dir, removed at teardown. */
export async function tempDir(t: Teardown, prefix = "rbee-test-"): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A fresh folder to run daemons under: at teardown every process still started from it is killed, then it is removed. */
export async function tempHome(t: Teardown, prefix = "rbee-home-"): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  t.teardown(async () => {
    await killUnder(dir);
    await rm(dir, { recursive: true, force: true });
  });
  return dir;
}

export const LOCALHOST_CONF = "Host localhost\n  HivePort 0\n";

/** A tempHome laid out as RBEE_HOME: config/ with `hivesConf` (localhost on HivePort 0 by default) and state/. */
export async function makeHome(t: Teardown, o: { prefix?: string; hivesConf?: string } = {}): Promise<string> {
  const home = await tempHome(t, o.prefix);
  await mkdir(path.join(home, "config"), { recursive: true });
  await mkdir(path.join(home, "state"), { recursive: true });
  await writeFile(path.join(home, "config", "hives.conf"), o.hivesConf ?? LOCALHOST_CONF);
  return home;
}

/** rbee-tiny written into a tempDir of its own. */
export async function tinyModel(t: Teardown): Promise<string> {
  const file = path.join(await tempDir(t, "rbee-tiny-"), RBEE_TINY_FILE);
  await writeTinyModel(file);
  return file;
}
