#!/usr/bin/env node
import { runDaemon } from "../../shared/daemon.js";
import { fstatSync } from "node:fs";
import { Worker } from "./app.js";
import { WORKER_FLAGS, WORKER_HELP, parseWorkerFlags } from "./config.js";

await runDaemon({
  name: "llm-worker-rbee",
  defaultPort: 9001,
  help: WORKER_HELP,
  flags: WORKER_FLAGS,
  async create(ctx) {
    const worker = new Worker(parseWorkerFlags(ctx.values), {
      token: ctx.token,
      logFile: ctx.logFile,
      // a worker whose model did not load has nothing to serve: exit 1 so the hive sees it
      onLoadFailed: () => {
        void worker.server.close().finally(() => worker.server.logger.close().finally(() => process.exit(1)));
      },
    });
    return {
      server: worker.server,
      afterListen: () => {
        watchParentPipe(() => worker.server.requestStop("the hive that started this worker is gone (stdin closed)"));
        return worker.startLoad();
      },
      dispose: () => worker.dispose(),
    };
  },
});

/** A hive keeps each worker's stdin as a pipe it never writes; its end means the hive died, so no orphan stays. */
function watchParentPipe(onGone: () => void): void {
  let isPipe = false;
  try {
    const stat = fstatSync(0);
    isPipe = stat.isFIFO() || stat.isSocket(); // Node's child-process pipes are socket pairs
  } catch {
    return;
  }
  if (!isPipe) return;
  process.stdin.on("data", () => {});
  process.stdin.once("end", onGone);
  process.stdin.once("error", onGone);
}
