/**
 * Orphaned workers: a worker whose hive died without stopping it is found by its command line
 * (this hive's worker id and state folder) and stopped; a worker whose hive lives is left alone.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { findOrphanWorkers, reapOrphanWorkers } from "../../daemons/hive/orphans.js";
import { Logger } from "../../shared/log.js";
import { tempHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";

const linux = process.platform === "linux";

(linux ? test : test.skip)("a worker whose hive is alive is left alone; once its hive is SIGKILLed it is found and stopped", async (t) => {
  // Both stand-ins name `dir` on their command lines: its teardown kills them.
  const dir = await tempHome(t, "rbee-orphans-");
  const stateDir = path.join(dir, "state");
  await mkdir(path.join(dir, "hive"), { recursive: true });
  await mkdir(stateDir);
  // A stand-in hive (named like the real entry) that starts a stand-in worker with a worker's flags, then idles.
  const fakeHive = path.join(dir, "hive", "main.js");
  const pidFile = path.join(dir, "worker.pid");
  await writeFile(fakeHive, `
    const { spawn } = require("node:child_process");
    const w = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)", "--", "--worker-id", "h9-wabc123", "--log-file", ${JSON.stringify(path.join(stateDir, "llm-worker-rbee-h9-wabc123.log"))}], { stdio: "ignore" });
    require("node:fs").writeFileSync(${JSON.stringify(pidFile)}, String(w.pid));
    setInterval(() => {}, 1000);
  `);
  const hive = spawn(process.execPath, [fakeHive], { stdio: "ignore" });
  const exited = new Promise((r) => hive.once("exit", r));
  const workerPid = await waitFor("the stand-in worker", async () => Number(await readFile(pidFile, "utf8").catch(() => "")) || 0);
  await waitFor("its command line", async () => (await readFile(`/proc/${workerPid}/cmdline`, "utf8")).includes("--worker-id"));

  t.deepEqual(await findOrphanWorkers("h9", stateDir), [], "its hive lives");
  hive.kill("SIGKILL");
  await exited;
  t.deepEqual(await findOrphanWorkers("h9", stateDir), [workerPid], "orphaned now");
  t.deepEqual(await findOrphanWorkers("h10", stateDir), [], "another hive id's workers are not ours");
  t.deepEqual(await findOrphanWorkers("h9", dir), [], "nor those logging into another state folder");
  const lines: string[] = [];
  const logger = new Logger("rbee-hive", "h9");
  logger.write = (line) => void lines.push(`${line.action}: ${line.human}`);
  t.deepEqual(await reapOrphanWorkers("h9", stateDir, logger, 3000), [workerPid]);
  await waitFor("the orphan to go", async () => !(await readFile(`/proc/${workerPid}/cmdline`, "utf8").catch(() => "")), 10_000);
  t.regex(lines.join("\n"), new RegExp(`worker_orphans: Stopping 1 worker\\(s\\) left running by an earlier rbee-hive h9 \\(pid ${workerPid}\\)`));
});
