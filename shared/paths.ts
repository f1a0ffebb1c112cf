import { randomBytes } from "node:crypto";
import { link, mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { homedir } from "node:os";
import * as path from "node:path";

/** Where rbee keeps its files on this machine (contract section 7). */
export type RbeePaths = {
  /** hives.conf and token: `~/.config/rbee` */
  configDir: string;
  /** the model catalog: `~/.cache/rbee/models` */
  modelsDir: string;
  /** logs and pid files: `~/.local/state/rbee` */
  stateDir: string;
  /** same folder as stateDir; named for readers looking for logs */
  logsDir: string;
  hivesConf: string;
  tokenFile: string;
  /** `<stateDir>/<name>.pid` */
  pidFile(name: string): string;
  /** `<stateDir>/<name>.log` */
  logFile(name: string): string;
};

// The XDG spec says relative values are invalid and must be ignored.
function xdgBase(env: NodeJS.ProcessEnv, variable: string, fallback: string[]): string {
  const value = env[variable];
  if (value && path.isAbsolute(value)) return value;
  return path.join(homedir(), ...fallback);
}

// A name becomes a file name, so it must not climb out of the state folder.
function fileName(name: string, ext: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new TypeError(`Invalid file name for a ${ext} file: ${JSON.stringify(name)}`);
  }
  return `${name}.${ext}`;
}

export function resolvePaths(env: NodeJS.ProcessEnv = process.env): RbeePaths {
  let configDir: string;
  let modelsDir: string;
  let stateDir: string;
  const home = env["RBEE_HOME"];
  if (home) {
    const root = path.resolve(home);
    configDir = path.join(root, "config");
    modelsDir = path.join(root, "models");
    stateDir = path.join(root, "state");
  } else {
    configDir = path.join(xdgBase(env, "XDG_CONFIG_HOME", [".config"]), "rbee");
    modelsDir = path.join(xdgBase(env, "XDG_CACHE_HOME", [".cache"]), "rbee", "models");
    stateDir = path.join(xdgBase(env, "XDG_STATE_HOME", [".local", "state"]), "rbee");
  }

  return {
    configDir,
    modelsDir,
    stateDir,
    logsDir: stateDir,
    hivesConf: path.join(configDir, "hives.conf"),
    tokenFile: path.join(configDir, "token"),
    pidFile: (name) => path.join(stateDir, fileName(name, "pid")),
    logFile: (name) => path.join(stateDir, fileName(name, "log")),
  };
}

/** Creates dir and its parents; new folders get mode (default 0700, since they hold tokens and logs). */
export async function ensureDir(dir: string, mode = 0o700): Promise<void> {
  await mkdir(dir, { recursive: true, mode });
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return err instanceof Error && codes.includes((err as NodeJS.ErrnoException).code ?? "");
}

/** The trimmed token in a file; undefined when the file is missing or blank. */
export async function readTokenFile(file: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    throw err;
  }
  const token = text.trim();
  return token === "" ? undefined : token;
}

/** The token a client sends or a daemon requires: `RBEE_TOKEN`, else the config folder's token file. */
export async function readToken(paths: RbeePaths, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  const fromEnv = env["RBEE_TOKEN"]?.trim();
  if (fromEnv) return fromEnv;
  return readTokenFile(paths.tokenFile);
}

/** Returns the token file's token, first creating one (mode 0600) when there is none. */
export async function ensureToken(paths: RbeePaths): Promise<string> {
  const existing = await readTokenFile(paths.tokenFile);
  if (existing) return existing;

  await ensureDir(paths.configDir);
  const token = randomBytes(32).toString("base64url");
  const tmp = `${paths.tokenFile}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  // The mode is given at creation so the token is never readable by others, not even for an instant.
  const handle = await open(tmp, "wx", 0o600);
  try {
    try {
      await handle.writeFile(`${token}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }

    try {
      // link() publishes the complete file atomically and, unlike rename(), never replaces a racing writer's token.
      await link(tmp, paths.tokenFile);
      return token;
    } catch (err) {
      if (isErrno(err, "EEXIST")) {
        const raced = await readTokenFile(paths.tokenFile);
        if (raced) return raced;
      } else if (!isErrno(err, "EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS")) {
        throw err;
      }
      // A blank token file, or a file system without hard links: replace it whole.
      await rename(tmp, paths.tokenFile);
      return (await readTokenFile(paths.tokenFile)) ?? token;
    }
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
