/**
 * Load held, a small run of bench/load.ts on a real queen, hive and worker: status jobs 50 at a
 * time, concurrent infers onto one worker with parallel slots, and a bounded job registry after
 * more jobs than it keeps. Outcomes are asserted; the speeds are only logged.
 */
import test from "ava";
import { formatLoad, runLoad } from "../../bench/load.js";
import { daemonsBuilt } from "../_helpers/daemon.js";

(daemonsBuilt ? test : test.skip)("200 status jobs 50 at a time, 8 infers on a 4-slot worker, 2,000 jobs in a bounded registry: all complete", async (t) => {
  const r = await runLoad({ statusJobs: 200, concurrency: 50, inferJobs: 8, parallel: 4, tokens: 8, memoryJobs: 2000 });
  t.log(formatLoad(r));
  t.like(r.status, { jobs: 200, completed: 200, failed: 0 });
  t.like(r.infer, { jobs: 8, completed: 8, failed: 0, tokens: 64 });
  t.true(r.infer.max_busy_slots >= 1 && r.infer.max_busy_slots <= 4, `busy slots seen: ${r.infer.max_busy_slots}`);
  t.true(r.memory.jobs >= 2000);
  // 2,000 jobs ran; the registry keeps the newest 1,000 finished ones (the default), so memory stays bounded.
  t.is(r.memory.jobs_listed, 1000);
  t.true(r.memory.delta_mb < 100, `queen RSS grew ${r.memory.delta_mb} MB`);
});
