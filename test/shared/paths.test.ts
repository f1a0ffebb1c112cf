import test from "ava";
import { chmod, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import * as path from "node:path";
import { ensureDir, ensureToken, readToken, readTokenFile, resolvePaths } from "../../shared/paths.js";
import { tempDir } from "../_helpers/temp.js";

const posix = process.platform !== "win32";

async function modeOf(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

test("defaults follow the XDG base directories under the home folder", (t) => {
  const home = homedir();
  const paths = resolvePaths({});
  t.is(paths.configDir, path.join(home, ".config", "rbee"));
  t.is(paths.modelsDir, path.join(home, ".cache", "rbee", "models"));
  t.is(paths.stateDir, path.join(home, ".local", "state", "rbee"));
  t.is(paths.logsDir, paths.stateDir);
  t.is(paths.hivesConf, path.join(home, ".config", "rbee", "hives.conf"));
  t.is(paths.tokenFile, path.join(home, ".config", "rbee", "token"));
  t.is(paths.pidFile("queen-rbee"), path.join(home, ".local", "state", "rbee", "queen-rbee.pid"));
  t.is(paths.logFile("rbee-hive"), path.join(home, ".local", "state", "rbee", "rbee-hive.log"));
});

test("XDG variables move each folder", (t) => {
  const paths = resolvePaths({ XDG_CONFIG_HOME: "/x/config", XDG_CACHE_HOME: "/x/cache", XDG_STATE_HOME: "/x/state" });
  t.is(paths.configDir, "/x/config/rbee");
  t.is(paths.modelsDir, "/x/cache/rbee/models");
  t.is(paths.stateDir, "/x/state/rbee");
  t.is(paths.hivesConf, "/x/config/rbee/hives.conf");
  t.is(paths.tokenFile, "/x/config/rbee/token");
  t.is(paths.pidFile("queen-rbee"), "/x/state/rbee/queen-rbee.pid");
  t.is(paths.logFile("queen-rbee"), "/x/state/rbee/queen-rbee.log");
});

test("empty or relative XDG variables are ignored, as the XDG spec says", (t) => {
  const home = homedir();
  const paths = resolvePaths({ XDG_CONFIG_HOME: "", XDG_CACHE_HOME: "relative/cache", XDG_STATE_HOME: "/x/state" });
  t.is(paths.configDir, path.join(home, ".config", "rbee"));
  t.is(paths.modelsDir, path.join(home, ".cache", "rbee", "models"));
  t.is(paths.stateDir, "/x/state/rbee");
});

test("RBEE_HOME puts all three folders under it and wins over XDG", (t) => {
  const paths = resolvePaths({ RBEE_HOME: "/srv/rbee", XDG_CONFIG_HOME: "/x/config", XDG_STATE_HOME: "/x/state" });
  t.is(paths.configDir, "/srv/rbee/config");
  t.is(paths.modelsDir, "/srv/rbee/models");
  t.is(paths.stateDir, "/srv/rbee/state");
  t.is(paths.logsDir, "/srv/rbee/state");
  t.is(paths.hivesConf, "/srv/rbee/config/hives.conf");
  t.is(paths.tokenFile, "/srv/rbee/config/token");
  t.is(paths.pidFile("llm-worker-rbee-w1"), "/srv/rbee/state/llm-worker-rbee-w1.pid");
  t.is(paths.logFile("rbee-hive"), "/srv/rbee/state/rbee-hive.log");
});

test("a relative RBEE_HOME is made absolute", (t) => {
  t.is(resolvePaths({ RBEE_HOME: "rel/home" }).configDir, path.resolve("rel/home", "config"));
});

test("the default environment is process.env", (t) => {
  t.deepEqual(
    { ...resolvePaths(), pidFile: undefined, logFile: undefined },
    { ...resolvePaths(process.env), pidFile: undefined, logFile: undefined },
  );
});

test("pid and log file names cannot leave the state folder", (t) => {
  const paths = resolvePaths({ RBEE_HOME: "/r" });
  for (const name of ["", "..", "../x", "a/b", ".hidden", "a b"]) {
    t.throws(() => paths.pidFile(name), { instanceOf: TypeError }, name);
    t.throws(() => paths.logFile(name), { instanceOf: TypeError }, name);
  }
});

test("ensureDir creates parents with mode 0700 and accepts an existing folder", async (t) => {
  const root = await tempDir(t);
  const dir = path.join(root, "a", "b");
  await ensureDir(dir);
  await ensureDir(dir);
  t.true((await stat(dir)).isDirectory());
  if (posix) t.is(await modeOf(dir), 0o700);

  const open = path.join(root, "open");
  await ensureDir(open, 0o750);
  if (posix) t.is((await modeOf(open)) & ~0o750, 0);
});

test("ensureToken creates a 0600 token file once and then reuses it", async (t) => {
  const paths = resolvePaths({ RBEE_HOME: await tempDir(t) });
  t.is(await readToken(paths, {}), undefined);

  const token = await ensureToken(paths);
  t.regex(token, /^[A-Za-z0-9_-]{43}$/);
  t.is((await readFile(paths.tokenFile, "utf8")).trim(), token);
  if (posix) {
    t.is(await modeOf(paths.tokenFile), 0o600);
    t.is(await modeOf(paths.configDir), 0o700);
  }
  t.is(await ensureToken(paths), token);
  t.is(await readToken(paths, {}), token);
  // No temporary files are left next to it.
  t.deepEqual(await readdir(paths.configDir), ["token"]);
});

test("ensureToken calls racing each other agree on one token", async (t) => {
  const paths = resolvePaths({ RBEE_HOME: await tempDir(t) });
  const tokens = await Promise.all(Array.from({ length: 8 }, () => ensureToken(paths)));
  t.is(new Set(tokens).size, 1);
  t.is(await readTokenFile(paths.tokenFile), tokens[0]);
  t.deepEqual(await readdir(paths.configDir), ["token"]);
});

test("ensureToken keeps a token the user wrote, mode included", async (t) => {
  const paths = resolvePaths({ RBEE_HOME: await tempDir(t) });
  await ensureDir(paths.configDir);
  await writeFile(paths.tokenFile, "  my-own-token\n", { mode: 0o600 });
  if (posix) await chmod(paths.tokenFile, 0o400);
  t.is(await ensureToken(paths), "my-own-token");
  if (posix) t.is(await modeOf(paths.tokenFile), 0o400);
});

test("ensureToken replaces a blank token file with a new 0600 one", async (t) => {
  const paths = resolvePaths({ RBEE_HOME: await tempDir(t) });
  await ensureDir(paths.configDir);
  await writeFile(paths.tokenFile, "\n\n");
  const token = await ensureToken(paths);
  t.truthy(token);
  t.is(await readTokenFile(paths.tokenFile), token);
  if (posix) t.is(await modeOf(paths.tokenFile), 0o600);
});

test("RBEE_TOKEN takes precedence over the token file", async (t) => {
  const paths = resolvePaths({ RBEE_HOME: await tempDir(t) });
  const fileToken = await ensureToken(paths);
  t.is(await readToken(paths, { RBEE_TOKEN: "from-env" }), "from-env");
  t.is(await readToken(paths, { RBEE_TOKEN: "  padded \n" }), "padded");
  // An empty RBEE_TOKEN means none, so the file still counts.
  t.is(await readToken(paths, { RBEE_TOKEN: "" }), fileToken);
  t.is(await readToken(paths, {}), fileToken);
});

test("readTokenFile trims, and gives undefined for a missing or blank file", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "t");
  t.is(await readTokenFile(file), undefined);
  await writeFile(file, "\n\t secret-123 \r\n");
  t.is(await readTokenFile(file), "secret-123");
  await writeFile(file, "   \n");
  t.is(await readTokenFile(file), undefined);
  // Other failures are not hidden: a folder is not a token file.
  await t.throwsAsync(readTokenFile(dir));
});
