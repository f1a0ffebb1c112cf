import test from "ava";
import { writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import * as path from "node:path";
import {
  DEFAULT_HIVE_PORT,
  HivesConfError,
  findHive,
  hiveEntries,
  isValidHiveId,
  loadHivesConf,
  parseHivesConf,
} from "../../shared/hives-conf.js";
import { tempDir } from "../_helpers/temp.js";

const FILE = "/home/u/.config/rbee/hives.conf";

test("parses every key of a Host block", (t) => {
  const text = [
    "# two hives",
    "",
    "Host gpu-box",
    "  HostName 10.0.0.5",
    "  User rbee",
    "  Port 2222",
    "  HivePort 9100",
    "  IdentityFile /keys/id_ed25519",
    "  BinaryPath /opt/rbee/bin/rbee-hive",
    "  Env RBEE_HOME=/srv/rbee",
    "  Env CUDA_VISIBLE_DEVICES=0,1",
    "",
    "Host mac.local",
    "  HostName mac.example.com",
  ].join("\n");
  t.deepEqual(parseHivesConf(text, FILE), [
    {
      hiveId: "gpu-box",
      hostName: "10.0.0.5",
      user: "rbee",
      port: 2222,
      hivePort: 9100,
      identityFile: "/keys/id_ed25519",
      binaryPath: "/opt/rbee/bin/rbee-hive",
      env: { RBEE_HOME: "/srv/rbee", CUDA_VISIBLE_DEVICES: "0,1" },
      line: 3,
    },
    { hiveId: "mac.local", hostName: "mac.example.com", hivePort: DEFAULT_HIVE_PORT, env: {}, line: 13 },
  ]);
});

test("defaults: HostName is the hive id and HivePort is 9000", (t) => {
  t.deepEqual(parseHivesConf("Host worker-1\n", FILE), [
    { hiveId: "worker-1", hostName: "worker-1", hivePort: 9000, env: {}, line: 1 },
  ]);
  t.deepEqual(parseHivesConf("", FILE), []);
  t.deepEqual(parseHivesConf("# only a comment\n\n   \n", FILE), []);
});

test("keys are case-insensitive and take Key=value or Key value", (t) => {
  const text = [
    "HOST=a",
    "hostname = 10.0.0.1",
    "user=bob",
    "PORT\t22",
    "hiveport= 9001",
    "ENV=X=1",
    "IdentityFILE /k",
    "bInArYpAtH=/b",
  ].join("\n");
  t.deepEqual(parseHivesConf(text, FILE), [
    {
      hiveId: "a",
      hostName: "10.0.0.1",
      user: "bob",
      port: 22,
      hivePort: 9001,
      identityFile: "/k",
      binaryPath: "/b",
      env: { X: "1" },
      line: 1,
    },
  ]);
});

test("values may be double-quoted, with escapes, and end-of-line comments are ignored", (t) => {
  const text = [
    "Host q",
    '  IdentityFile "/keys/my key"',
    '  Env GREETING="hello world"',
    '  Env "QUOTE=say \\"hi\\" \\\\o/"',
    '  Env HASH=a#b  # a comment',
    '  Env EMPTY=',
    '  Env A=1 B=2',
    "  HivePort 9002 # the hive's port",
    '  User "#me"',
  ].join("\r\n");
  const [hive] = parseHivesConf(text, FILE);
  t.is(hive?.identityFile, "/keys/my key");
  t.deepEqual(hive?.env, { GREETING: "hello world", QUOTE: 'say "hi" \\o/', HASH: "a#b", EMPTY: "", A: "1", B: "2" });
  t.is(hive?.hivePort, 9002);
  t.is(hive?.user, "#me");
});

test("a leading ~/ in IdentityFile is this machine's home", (t) => {
  const [hive] = parseHivesConf("Host h\nIdentityFile ~/.ssh/id_rbee\n", FILE);
  t.is(hive?.identityFile, path.join(homedir(), ".ssh/id_rbee"));
  const [other] = parseHivesConf("Host h\nIdentityFile ~other/key\n", FILE);
  t.is(other?.identityFile, "~other/key");
});

test("localhost exists without an entry", (t) => {
  const configs = parseHivesConf("Host gpu\nHostName 10.0.0.9\n", FILE);
  t.deepEqual(findHive(configs, "localhost"), {
    hiveId: "localhost",
    hostName: "127.0.0.1",
    hivePort: 9000,
    env: {},
    line: 0,
  });
  t.deepEqual(
    hiveEntries(configs).map((h) => h.hiveId),
    ["localhost", "gpu"],
  );
  t.deepEqual(hiveEntries([]).map((h) => h.hiveId), ["localhost"]);
  t.is(findHive(configs, "gpu")?.hostName, "10.0.0.9");
  t.is(findHive(configs, "nope"), undefined);
});

test("an entry for localhost sets its HivePort", (t) => {
  const configs = parseHivesConf("Host gpu\n\nHost localhost\n  HivePort 9200\n  Env RBEE_HOME=/tmp/r\n", FILE);
  const localhost = findHive(configs, "localhost");
  t.is(localhost?.hivePort, 9200);
  t.is(localhost?.hostName, "127.0.0.1");
  t.is(localhost?.line, 3);
  t.deepEqual(localhost?.env, { RBEE_HOME: "/tmp/r" });
  t.deepEqual(
    hiveEntries(configs).map((h) => h.hiveId),
    ["localhost", "gpu"],
  );
});

test("hive ids follow the documented pattern", (t) => {
  for (const id of ["a", "0", "gpu-box", "mac.local", "node_7", "a".repeat(64)]) t.true(isValidHiveId(id), id);
  for (const id of ["", "A", "-a", ".a", "a b", "a/b", "*", "a".repeat(65)]) t.false(isValidHiveId(id), id);
});

// Each case: the file's text, the line the error must name, and a piece of its message.
const errors: Array<[title: string, text: string, line: number, says: string]> = [
  ["a key before any Host", "# hives\n\nHostName 10.0.0.1\n", 3, 'HostName must come after a "Host <hive_id>" line'],
  ["an unknown key", "Host a\n  HostName x\n  ProxyJump bastion\n", 3, 'unknown key "ProxyJump"'],
  ["ssh's Match", "Host a\nMatch all\n", 2, 'unknown key "Match"'],
  ["a duplicate Host", "Host a\n\nHost b\nHost a\n", 4, "Host a is already defined on line 1"],
  ["a hive id with capitals", "Host GPU\n", 1, 'invalid hive id "GPU"'],
  ["a hive id pattern", "Host *\n", 1, 'invalid hive id "*"'],
  ["a hive id that is too long", `Host ok\nHost ${"a".repeat(65)}\n`, 2, "invalid hive id"],
  ["two hive ids on one Host", "Host a b\n", 1, "Host takes one value, got 2"],
  ["a Host with no id", "Host\n", 1, "Host needs a value"],
  ["a key with no value", "Host a\nHostName\n", 2, "HostName needs a value"],
  ["an empty quoted value", 'Host a\nIdentityFile ""\n', 2, "IdentityFile needs a value"],
  ["a line with no key", "Host a\n= 10.0.0.1\n", 2, "a line must start with a key"],
  ["a Port of 0", "Host a\nPort 0\n", 2, 'Port must be a whole number from 1 to 65535, not "0"'],
  ["a Port over 65535", "Host a\nPort 65536\n", 2, 'Port must be a whole number from 1 to 65535, not "65536"'],
  ["a Port that is not a number", "Host a\nPort ssh\n", 2, 'not "ssh"'],
  ["a fractional HivePort", "Host a\n\n\nHivePort 9000.5\n", 4, 'HivePort must be a whole number from 0 to 65535, not "9000.5"'],
  ["a negative HivePort", "Host a\nHivePort -1\n", 2, "HivePort must be a whole number"],
  ["a HivePort in hex", "Host a\nHivePort 0x2328\n", 2, "HivePort must be a whole number"],
  ["a relative BinaryPath", "Host a\nBinaryPath bin/rbee-hive\n", 2, 'BinaryPath must be an absolute path, not "bin/rbee-hive"'],
  ["a BinaryPath under ~", "Host a\nBinaryPath ~/bin/rbee-hive\n", 2, "BinaryPath must be an absolute path"],
  ["an Env without =", "Host a\nEnv RBEE_HOME\n", 2, 'Env takes NAME=value, not "RBEE_HOME"'],
  ["an Env with a bad name", "Host a\nEnv 1X=2\n", 2, 'Env name "1X" is not valid'],
  ["an Env with an empty name", 'Host a\nEnv "=2"\n', 2, 'Env name "" is not valid'],
  ["an Env with a dash in its name", "Host a\nEnv A-B=1\n", 2, 'Env name "A-B" is not valid'],
  ["an Env set twice", "Host a\nEnv X=1\nEnv Y=2\nEnv X=3\n", 4, "Env X is already set for Host a on line 2"],
  ["a key set twice", "Host a\nhostname x\nHostName y\n", 3, "HostName is already set for Host a on line 2"],
  ["two values for a key", "Host a\nIdentityFile /my key\n", 2, "IdentityFile takes one value, got 2"],
  ["an unterminated quote", 'Host a\nIdentityFile "/keys/x\n', 2, "unterminated double quote"],
  ["a HostName that looks like an ssh option", "Host a\nHostName -oProxyCommand=x\n", 2, 'HostName "-oProxyCommand=x" is not valid'],
  ["a User that looks like an ssh option", "Host a\nUser -x\n", 2, 'User "-x" is not valid'],
];

for (const [title, text, line, says] of errors) {
  test(`error: ${title}`, (t) => {
    const error = t.throws(() => parseHivesConf(text, FILE), { instanceOf: HivesConfError });
    t.is(error.file, FILE);
    t.is(error.line, line);
    t.true(error.message.startsWith(`${FILE}:${line}: `), error.message);
    t.true(error.message.includes(says), error.message);
    t.is(error.message, `${FILE}:${line}: ${error.reason}`);
    t.is(error.name, "HivesConfError");
  });
}

test("line numbers count CRLF lines and skip a byte-order mark", (t) => {
  const error = t.throws(() => parseHivesConf("\uFEFFHost a\r\n\r\nPort 99999\r\n", FILE), { instanceOf: HivesConfError });
  t.is(error.line, 3);
  t.is(error.message, `${FILE}:3: Port must be a whole number from 1 to 65535, not "99999"`);
});

test("loadHivesConf reads a file, names it in errors, and treats a missing file as empty", async (t) => {
  const dir = await tempDir(t, "rbee-hives-conf-");

  t.deepEqual(await loadHivesConf(path.join(dir, "missing.conf")), []);

  const good = path.join(dir, "hives.conf");
  await writeFile(good, "Host gpu\n  HostName 10.0.0.2\n  HivePort 9100\n");
  t.deepEqual(await loadHivesConf(good), [{ hiveId: "gpu", hostName: "10.0.0.2", hivePort: 9100, env: {}, line: 1 }]);

  const bad = path.join(dir, "bad.conf");
  await writeFile(bad, "Host gpu\n  HostName 10.0.0.2\n  Colour blue\n");
  const error = await t.throwsAsync(loadHivesConf(bad), { instanceOf: HivesConfError });
  t.is(error.file, bad);
  t.is(error.line, 3);
  t.true(error.message.startsWith(`${bad}:3: unknown key "Colour"`), error.message);
});

test("HivePort 0 lets the hive pick a free port", (t) => {
  const [hive] = parseHivesConf("Host localhost\nHivePort 0\n", FILE);
  t.is(hive?.hivePort, 0);
});
