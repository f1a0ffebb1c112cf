import test from "ava";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import type { HiveStatus } from "../../daemons/queen/hive-registry.js";
import { dist, startDaemon } from "../_helpers/daemon.js";
import { alive, freePort } from "../_helpers/process.js";
import { tempHome } from "../_helpers/temp.js";
import { waitFor } from "../_helpers/wait.js";
import { narrations, payload, runJob, startQueen } from "./helpers.js";

const run = promisify(execFile);
const SSHD = "/usr/sbin/sshd";

const skipWhy = !existsSync(SSHD) ? `${SSHD} is missing (apt-get install openssh-server)` : !existsSync("/usr/bin/ssh") && !existsSync("/bin/ssh") ? "the ssh client is missing" : undefined;

if (skipWhy) {
  test("SSH launch (SKIPPED)", (t) => {
    t.log(`!!! SKIPPING the real SSH test: ${skipWhy}. The CI script installs openssh-server; install it to run this test. !!!`);
    t.pass();
  });
} else {
  test("hive_start over real SSH: token over stdin, remote hive registers, infer runs through it, hive_stop stops it", async (t) => {
    const dir = await tempHome(t, "rbee-ssh-");
    const queenHome = path.join(dir, "queen");
    const remoteHome = path.join(dir, "remote");
    const user = userInfo().username;

    // Our own sshd on a free port, accepting only a key made for this test.
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "host_key")]);
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "id")]);
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, "other_id")]);
    await writeFile(path.join(dir, "authorized_keys"), await readFile(path.join(dir, "id.pub")));
    await chmod(path.join(dir, "authorized_keys"), 0o600);
    const sshPort = await freePort();
    await writeFile(path.join(dir, "sshd_config"), [
      `Port ${sshPort}`, "ListenAddress 127.0.0.1", `HostKey ${path.join(dir, "host_key")}`,
      `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`, "PermitRootLogin prohibit-password",
      "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
      "StrictModes no", "UsePAM no", `PidFile ${path.join(dir, "sshd.pid")}`, "",
    ].join("\n"));
    if (process.getuid?.() === 0) await mkdir("/run/sshd", { recursive: true });
    // accept-new records the test's host key in ~/.ssh/known_hosts; forget it before and after.
    const forget = () => run("ssh-keygen", ["-R", `[127.0.0.1]:${sshPort}`]).catch(() => undefined);
    await forget();
    t.teardown(forget);
    const sshd = await startDaemon(t, [SSHD, "-D", "-e", "-f", path.join(dir, "sshd_config")], { ready: /Server listening on (\S+)/, deadlineMs: 15_000 });

    // The remote side runs rbee-hive from this checkout through a wrapper, as BinaryPath names it.
    const wrapper = path.join(dir, "rbee-hive");
    await writeFile(wrapper, `#!/bin/sh\nexec ${process.execPath} ${dist("hive")} "$@"\n`);
    await chmod(wrapper, 0o755);
    await mkdir(path.join(queenHome, "config"), { recursive: true });
    const entry = (id: string, key: string) =>
      `Host ${id}\n  HostName 127.0.0.1\n  Port ${sshPort}\n  User ${user}\n  IdentityFile ${path.join(dir, key)}\n  HivePort 0\n  BinaryPath ${wrapper}\n  Env RBEE_HOME=${remoteHome}\n`;
    await writeFile(path.join(queenHome, "config", "hives.conf"), entry("sshhive", "id") + entry("badkey", "other_id"));
    const remotePid = path.join(remoteHome, "state", "rbee-hive-sshhive.pid");
    t.teardown(async () => {
      const pid = Number((await readFile(remotePid, "utf8").catch(() => "")).trim());
      if (pid > 0 && alive(pid)) process.kill(pid, "SIGTERM");
    });

    const queenPort = await freePort();
    const queen = await startQueen(t, queenHome, ["--port", String(queenPort), "--host", "127.0.0.1", "--advertise-url", `http://127.0.0.1:${queenPort}`]);

    // A key sshd does not know: SSH_FAILED with ssh's own reason and a hint.
    const bad = await runJob(queen.url, { operation: "hive_start", hive_id: "badkey" });
    t.like(bad.end, { status: "failed", error: { code: "SSH_FAILED" } });
    t.regex(bad.end.error?.message ?? "", /Permission denied/);
    t.regex(bad.end.error?.message ?? "", /IdentityFile/);

    const started = await runJob(queen.url, { operation: "hive_start", hive_id: "sshhive" });
    t.is(started.end.status, "completed", `${JSON.stringify(started.end)} ${narrations(started).join(" | ")} ${sshd.output()}`);
    t.true(narrations(started).some((n) => /over SSH/.test(n)));
    const token = (await readFile(path.join(queenHome, "config", "token"), "utf8")).trim();
    t.true(token.length >= 32);
    t.is((await stat(path.join(queenHome, "config", "token"))).mode & 0o777, 0o600);
    const remoteToken = path.join(remoteHome, "state", "rbee-hive-sshhive.token");
    t.is((await readFile(remoteToken, "utf8")).trim(), token);
    t.is((await stat(remoteToken)).mode & 0o777, 0o600);
    const { stdout: ps } = await run("ps", ["-eo", "args"]);
    t.true(ps.includes("--hive-id sshhive"), "the remote hive runs");
    t.false(ps.includes(token), "the token is in no process's arguments");

    const status = payload<{ hives: HiveStatus[] }>(await runJob(queen.url, { operation: "status" }), "status").hives.find((h) => h.hive_id === "sshhive");
    t.is(status?.state, "online");
    t.regex(status?.url ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
    // Bound to 0.0.0.0, the hive refuses requests without the token.
    const open = await fetch(`${status?.url}/v1/jobs`);
    t.is(open.status, 401);

    const again = await runJob(queen.url, { operation: "hive_start", hive_id: "sshhive" });
    t.is(again.end.status, "completed");
    t.true(narrations(again).some((n) => /already running/.test(n)));

    const infer = await runJob(queen.url, { operation: "infer", prompt: "hello", max_tokens: 6, ignore_eos: true, hive_id: "sshhive" });
    t.is(infer.end.status, "completed", JSON.stringify(infer.end));
    const tokens = infer.events.filter((e) => e.event === "token");
    t.is(tokens.length, 6);
    t.true(tokens.every((e) => e.data.path.length === 3 && e.data.path[0] === infer.jobId));

    const pid = Number((await readFile(remotePid, "utf8")).trim());
    const stopped = await runJob(queen.url, { operation: "hive_stop", hive_id: "sshhive" });
    t.is(stopped.end.status, "completed");
    await waitFor("the remote hive process to exit", () => !alive(pid), 15_000);
    t.is(payload<{ hives: HiveStatus[] }>(await runJob(queen.url, { operation: "status" }), "status").hives.find((h) => h.hive_id === "sshhive")?.state, "offline");
  });
}
