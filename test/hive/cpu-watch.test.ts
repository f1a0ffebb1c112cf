/**
 * The liveness helper that keeps a hive from killing a worker that is only slow on a loaded
 * machine: a process using CPU time is busy; a stopped one (SIGSTOP) or an idle one is not.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { CpuWatch, cpuTicks } from "../../daemons/hive/cpu-watch.js";
import { waitFor } from "../_helpers/wait.js";

test("CpuWatch: busy while the ticks grow, not once they stop or the process is gone", (t) => {
  let ticks: number | undefined = 100;
  const watch = new CpuWatch(1, () => ticks);
  watch.sample(0);
  t.false(watch.busy(0, 1000), "one reading says nothing yet");
  ticks = 105;
  watch.sample(250);
  t.true(watch.busy(500, 1000));
  watch.sample(1000);
  t.true(watch.busy(1200, 1000));
  t.false(watch.busy(1300, 1000), "no CPU time for over a second");
  ticks = undefined;
  watch.sample(1400);
  t.false(watch.busy(1400, 1000), "stopped or gone");
});

(process.platform === "linux" ? test : test.skip)("cpuTicks: a spinning process uses CPU time; stopped with SIGSTOP it reads as unknown", async (t) => {
  const child = spawn(process.execPath, ["-e", "for (;;) {}"], { stdio: "ignore" });
  t.teardown(() => child.kill("SIGKILL"));
  const pid = child.pid ?? 0;
  const first = (await waitFor("a first reading", () => cpuTicks(pid))) ?? 0;
  await waitFor("CPU time to grow", () => (cpuTicks(pid) ?? 0) > first, 10_000);
  const watch = new CpuWatch(pid);
  watch.sample(Date.now());
  await waitFor("busy", () => (watch.sample(Date.now()), watch.busy(Date.now(), 1000)), 10_000);
  child.kill("SIGSTOP");
  await waitFor("stopped", () => cpuTicks(pid) === undefined, 5000);
  watch.sample(Date.now());
  t.false(watch.busy(Date.now(), 1000));
  t.is(cpuTicks(999_999_999), undefined, "no such process");
});
