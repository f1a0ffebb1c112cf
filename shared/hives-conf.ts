import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import * as path from "node:path";
import { HIVE_ID_PATTERN } from "./protocol.js";

export { HIVE_ID_PATTERN };

/** One `Host` block of hives.conf (contract section 7). */
export type HiveConfig = {
  hiveId: string;
  /** where ssh connects; defaults to the hive id, like ssh's Host alias */
  hostName: string;
  user?: string;
  /** the ssh port */
  port?: number;
  /** the port rbee-hive listens on there */
  hivePort: number;
  /** with a leading `~/` expanded to this machine's home */
  identityFile?: string;
  /** absolute path of rbee-hive on that machine; unset means `rbee-hive` on the remote PATH */
  binaryPath?: string;
  /** set in the remote hive's environment */
  env: Record<string, string>;
  /** line of the `Host` entry; 0 for the built-in localhost */
  line: number;
};

export const DEFAULT_HIVE_PORT = 9000;
export const LOCALHOST_HIVE_ID = "localhost";
const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isValidHiveId(value: string): boolean {
  return HIVE_ID_PATTERN.test(value);
}

/** A mistake in hives.conf, reported as `<file>:<line>: <what is wrong>`. */
export class HivesConfError extends Error {
  override readonly name = "HivesConfError";
  readonly file: string;
  readonly line: number;
  /** the message without the `<file>:<line>: ` prefix */
  readonly reason: string;

  constructor(file: string, line: number, reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

type Key = "host" | "hostname" | "user" | "port" | "hiveport" | "identityfile" | "binarypath" | "env";

// Canonical spellings, for messages; lookups go through the lowercased key as in ssh_config.
const KEYS: Record<Key, string> = {
  host: "Host",
  hostname: "HostName",
  user: "User",
  port: "Port",
  hiveport: "HivePort",
  identityfile: "IdentityFile",
  binarypath: "BinaryPath",
  env: "Env",
};

function isKey(value: string): value is Key {
  return Object.hasOwn(KEYS, value);
}

/** Splits arguments on blanks; double quotes group (with `\"` and `\\` escapes) and a `#` opening a word starts a comment. */
function splitArgs(text: string, fail: (reason: string) => never): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length || text[i] === "#") break;
    let arg = "";
    while (i < text.length && !/\s/.test(text[i]!)) {
      const ch = text[i]!;
      if (ch !== '"') {
        arg += ch;
        i++;
        continue;
      }
      i++;
      for (;;) {
        if (i >= text.length) fail("unterminated double quote");
        const q = text[i]!;
        if (q === '"') break;
        if (q === "\\" && (text[i + 1] === '"' || text[i + 1] === "\\")) {
          arg += text[i + 1];
          i += 2;
          continue;
        }
        arg += q;
        i++;
      }
      i++;
    }
    args.push(arg);
  }
  return args;
}

function parsePort(keyName: string, value: string, fail: (reason: string) => never, min = 1): number {
  const port = /^[0-9]{1,5}$/.test(value) ? Number(value) : Number.NaN;
  if (!(port >= min && port <= 65535)) {
    fail(`${keyName} must be a whole number from ${min} to 65535, not ${JSON.stringify(value)}`);
  }
  return port;
}

// HostName and User end up as ssh arguments, so a leading "-" would be read as an option.
function checkSshWord(keyName: string, value: string, fail: (reason: string) => never): string {
  if (value === "" || value.startsWith("-") || /[\s\p{Cc}]/u.test(value)) {
    fail(`${keyName} ${JSON.stringify(value)} is not valid: it must be non-empty, must not start with "-" and must not contain spaces`);
  }
  return value;
}

function expandHome(file: string): string {
  return file.startsWith("~/") ? path.join(homedir(), file.slice(2)) : file;
}

type Block = {
  config: HiveConfig;
  /** key -> line it was first set on, to report repeats */
  seen: Map<Key, number>;
  envLines: Map<string, number>;
};

/** Parses hives.conf text; `file` is only used in error messages. Throws HivesConfError at the first mistake. */
export function parseHivesConf(text: string, file: string): HiveConfig[] {
  const blocks: Block[] = [];
  const hostLines = new Map<string, number>();
  let current: Block | undefined;

  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const lineNo = index + 1;
    const fail: (reason: string) => never = (reason) => {
      throw new HivesConfError(file, lineNo, reason);
    };

    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;

    // ssh_config: the key ends at a blank or "=", and one "=" with optional blanks may separate it from the value.
    const match = /^([^\s=]*)\s*(?:=\s*)?(.*)$/.exec(trimmed);
    const word = match?.[1] ?? "";
    if (word === "") fail(`a line must start with a key, as in "HostName 10.0.0.5"`);
    const key = word.toLowerCase();
    if (!isKey(key)) {
      fail(`unknown key "${word}"; the keys are ${Object.values(KEYS).join(", ")}`);
    }
    const keyName = KEYS[key];
    const args = splitArgs(match?.[2] ?? "", fail);
    if (args.length === 0 || args[0] === "") fail(`${keyName} needs a value`);
    if (args.length > 1 && key !== "env") {
      fail(`${keyName} takes one value, got ${args.length}; quote a value that contains spaces`);
    }
    const value = args[0]!;

    if (key === "host") {
      if (!isValidHiveId(value)) {
        fail(
          `invalid hive id ${JSON.stringify(value)}: it must match ${HIVE_ID_PATTERN.source} (lowercase letters, digits, ".", "_", "-"; patterns are not supported)`,
        );
      }
      const first = hostLines.get(value);
      if (first !== undefined) fail(`Host ${value} is already defined on line ${first}`);
      hostLines.set(value, lineNo);
      current = {
        config: {
          hiveId: value,
          hostName: value === LOCALHOST_HIVE_ID ? "127.0.0.1" : value,
          hivePort: DEFAULT_HIVE_PORT,
          env: {},
          line: lineNo,
        },
        seen: new Map(),
        envLines: new Map(),
      };
      blocks.push(current);
      continue;
    }

    if (current === undefined) fail(`${keyName} must come after a "Host <hive_id>" line`);
    const { config, seen, envLines } = current;

    if (key === "env") {
      for (const assignment of args) {
        const eq = assignment.indexOf("=");
        if (eq < 0) fail(`Env takes NAME=value, not ${JSON.stringify(assignment)}`);
        const name = assignment.slice(0, eq);
        if (!ENV_NAME_PATTERN.test(name)) {
          fail(`Env name ${JSON.stringify(name)} is not valid: it must match ${ENV_NAME_PATTERN.source}`);
        }
        const first = envLines.get(name);
        if (first !== undefined) fail(`Env ${name} is already set for Host ${config.hiveId} on line ${first}`);
        envLines.set(name, lineNo);
        config.env[name] = assignment.slice(eq + 1);
      }
      continue;
    }

    const first = seen.get(key);
    if (first !== undefined) fail(`${keyName} is already set for Host ${config.hiveId} on line ${first}`);
    seen.set(key, lineNo);

    switch (key) {
      case "hostname":
        config.hostName = checkSshWord(keyName, value, fail);
        break;
      case "user":
        config.user = checkSshWord(keyName, value, fail);
        break;
      case "port":
        config.port = parsePort(keyName, value, fail);
        break;
      case "hiveport":
        config.hivePort = parsePort(keyName, value, fail, 0); // 0: the hive picks a free port
        break;
      case "identityfile":
        config.identityFile = expandHome(value);
        break;
      case "binarypath":
        // The path is on the hive's machine, whose home and working folder are unknown here.
        if (!value.startsWith("/")) fail(`BinaryPath must be an absolute path, not ${JSON.stringify(value)}`);
        config.binaryPath = value;
        break;
    }
  }

  return blocks.map((block) => block.config);
}

/** Reads and parses hives.conf; a missing file means no configured hives. */
export async function loadHivesConf(file: string): Promise<HiveConfig[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
  return parseHivesConf(text, file);
}

function defaultLocalhost(): HiveConfig {
  return { hiveId: LOCALHOST_HIVE_ID, hostName: "127.0.0.1", hivePort: DEFAULT_HIVE_PORT, env: {}, line: 0 };
}

/** Every known hive: localhost first (built in unless configured), then the file's entries in order. */
export function hiveEntries(configs: readonly HiveConfig[]): HiveConfig[] {
  const localhost = configs.find((c) => c.hiveId === LOCALHOST_HIVE_ID) ?? defaultLocalhost();
  return [localhost, ...configs.filter((c) => c.hiveId !== LOCALHOST_HIVE_ID)];
}

/** The hive with that id, including the built-in localhost; undefined when unknown. */
export function findHive(configs: readonly HiveConfig[], hiveId: string): HiveConfig | undefined {
  return hiveEntries(configs).find((c) => c.hiveId === hiveId);
}
