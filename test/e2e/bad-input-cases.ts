/**
 * Bad request bodies for POST /v1/jobs and what each must get: the contract's code, and for
 * INVALID_REQUEST the field the message names first (`field: ...`). Sent to real daemons by
 * bad-input.test.ts.
 */

export interface BadCase {
  name: string;
  /** a string is sent as it is; anything else as JSON */
  body: unknown;
  code: "INVALID_JSON" | "INVALID_REQUEST" | "UNKNOWN_OPERATION";
  /** for INVALID_REQUEST: the field the message starts with */
  field?: string;
}

const infer = (extra: object): object => ({ operation: "infer", prompt: "hi", ...extra });
const spawn = (extra: object): object => ({ operation: "worker_spawn", ...extra });
const download = (extra: object): object => ({ operation: "model_download", model: "https://example.com/x.gguf", ...extra });

/** `[field, value]` pairs that are each wrong for `make(field: value)`. */
function fields(op: string, make: (extra: object) => object, pairs: [string, unknown, string?][]): BadCase[] {
  return pairs.map(([field, value, named]) => ({
    name: `${op} ${field}=${JSON.stringify(value)?.slice(0, 40)}`,
    body: make({ [field]: value }),
    code: "INVALID_REQUEST",
    field: named ?? field,
  }));
}

const HOSTILE_IDS = ["../x", "/etc/passwd", "file:///etc/passwd", "a/../../b", "Big", "x..y", "", "a".repeat(129), "hf:../../x", "rbee-tiny\u0000", " rbee-tiny"];

export const BAD_CASES: BadCase[] = [
  { name: "not JSON", body: "{", code: "INVALID_JSON" },
  { name: "an empty body", body: "", code: "INVALID_JSON" },
  { name: "JSON then garbage", body: '{"operation":"status"} x', code: "INVALID_JSON" },
  { name: "a list", body: "[]", code: "INVALID_REQUEST", field: "body" },
  { name: "a string", body: '"infer"', code: "INVALID_REQUEST", field: "body" },
  { name: "null", body: "null", code: "INVALID_REQUEST", field: "body" },
  { name: "a number", body: "42", code: "INVALID_REQUEST", field: "body" },
  { name: "a deeply nested list", body: `${"[".repeat(300_000)}${"]".repeat(300_000)}`, code: "INVALID_REQUEST", field: "body" },
  { name: "a number too large for a double", body: '{"operation":"infer","prompt":"x","max_tokens":1e400}', code: "INVALID_REQUEST", field: "max_tokens" },
  { name: "a duplicated key, the last one bad", body: '{"operation":"infer","prompt":"x","max_tokens":5,"max_tokens":-5}', code: "INVALID_REQUEST", field: "max_tokens" },
  { name: "no operation", body: { prompt: "hi" }, code: "UNKNOWN_OPERATION" },
  { name: "operation not a string", body: { operation: 5 }, code: "UNKNOWN_OPERATION" },
  { name: "unknown operation", body: { operation: "rm -rf /" }, code: "UNKNOWN_OPERATION" },
  { name: "the internal load operation", body: { operation: "load" }, code: "UNKNOWN_OPERATION" },
  { name: "operation from the prototype", body: { operation: "constructor" }, code: "UNKNOWN_OPERATION" },
  ...fields("infer", infer, [
    ["max_tokens", 0], ["max_tokens", -1], ["max_tokens", 1.5], ["max_tokens", "8"], ["max_tokens", null], ["max_tokens", true],
    ["temperature", -0.1], ["temperature", 2.01], ["temperature", "1"], ["temperature", []],
    ["top_p", 0], ["top_p", 1.01], ["top_p", -1], ["top_p", "0.5"],
    ["top_k", -1], ["top_k", 2.5], ["top_k", "4"],
    ["seed", -1], ["seed", 2 ** 32], ["seed", 0.5], ["seed", "7"],
    ["stop", "x"], ["stop", [""], "stop[0]"], ["stop", Array(17).fill("a")], ["stop", [1], "stop[0]"],
    ["ignore_eos", "true"], ["ignore_eos", 1],
    ["prompt", ""], ["prompt", 5], ["prompt", null], ["prompt", ["hi"]],
    ["keep_alive", -2], ["keep_alive", 1.5], ["keep_alive", "300"],
    ...HOSTILE_IDS.map((id): [string, unknown] => ["model", id]), ["model", 5],
    ["hive_id", "../x"], ["hive_id", "UPPER"], ["hive_id", 5], ["hive_id", ""],
    ["worker_id", "../x"], ["worker_id", "a/b"], ["worker_id", 5],
  ]),
  ...fields("infer", (extra) => ({ operation: "infer", ...extra }), [
    ["messages", []], ["messages", "hi"], ["messages", ["hi"], "messages[0]"],
    ["messages", [{ role: "robot", content: "x" }], "messages[0].role"],
    ["messages", [{ role: "user" }], "messages[0].content"],
    ["messages", [{ role: "user", content: 5 }], "messages[0].content"],
    ["messages", [{ role: "user", content: "ok" }, null], "messages[1]"],
  ]),
  { name: "infer with both prompt and messages", body: infer({ messages: [{ role: "user", content: "x" }] }), code: "INVALID_REQUEST", field: "messages" },
  { name: "infer with neither prompt nor messages", body: { operation: "infer" }, code: "INVALID_REQUEST", field: "prompt" },
  ...fields("worker_spawn", spawn, [
    ["parallel", 0], ["parallel", 65], ["parallel", 1.5], ["parallel", "4"],
    ["context_size", 63], ["context_size", 64.5], ["context_size", "128"],
    ["gpu_layers", -1], ["gpu_layers", "all"], ["gpu_layers", 1.5], ["gpu_layers", "5"],
    ["device", "gpu"], ["device", "tpu"], ["device", "gpu:x"], ["device", "GPU:0"], ["device", 0],
    ["keep_alive", -2], ["model", "../x"], ["model", "file:///etc/passwd"], ["hive_id", "a b"],
  ]),
  ...fields("model_download", download, [
    ["model", "file:///etc/passwd"], ["model", "ftp://example.com/x.gguf"], ["model", "hf:../../x"], ["model", "hf:../../x.gguf"],
    ["model", "hf:a/b/../c.gguf"], ["model", "hf:a/b/x%2F..%2Fy.gguf"], ["model", "hf:a/b/c.txt"], ["model", "../x"], ["model", ""],
    ["model", "http://user:secret@example.com/x.gguf"], ["model", "http:///x.gguf"], ["model", 5], ["model", "x".repeat(5000)],
    ["name", "../x"], ["name", "Big Name"], ["name", "a/b"], ["name", 5],
  ]),
  { name: "model_download of a URL with no file name and no name", body: download({ model: "https://example.com/" }), code: "INVALID_REQUEST", field: "name" },
  { name: "model_download without model", body: { operation: "model_download" }, code: "INVALID_REQUEST", field: "model" },
  ...fields("model_import", (extra) => ({ operation: "model_import", path: "/tmp/x.gguf", ...extra }), [
    ["path", "relative/x.gguf"], ["path", ""], ["path", 5], ["name", "../x"],
  ]),
  ...["model_get", "model_delete"].flatMap((op) => [
    ...fields(op, (extra) => ({ operation: op, ...extra }), [["model", "../x"], ["model", "/etc/passwd"], ["model", 5]]),
    { name: `${op} without model`, body: { operation: op }, code: "INVALID_REQUEST" as const, field: "model" },
  ]),
  { name: "worker_stop without worker_id", body: { operation: "worker_stop" }, code: "INVALID_REQUEST", field: "worker_id" },
  ...fields("worker_stop", (extra) => ({ operation: "worker_stop", ...extra }), [["worker_id", "../x"], ["worker_id", ""]]),
  ...fields("embed", (extra) => ({ operation: "embed", ...extra }), [
    ["input", ""], ["input", []], ["input", [""], "input[0]"], ["input", 5], ["input", [1], "input[0]"], ["input", undefined],
  ]),
  ...fields("embed", (extra) => ({ operation: "embed", input: "x", ...extra }), [["model", "../x"], ["keep_alive", "1"]]),
  ...["hive_start", "hive_stop", "hive_status", "worker_list", "model_list"].flatMap((op) =>
    fields(op, (extra) => ({ operation: op, ...extra }), [["hive_id", "../x"], ["hive_id", 5]])),
];

/** Operations a hive accepts (the rest are the queen's own). */
export const HIVE_ACCEPTS = new Set(["worker_spawn", "worker_list", "worker_stop", "model_list", "model_get", "model_download", "model_delete", "model_import", "infer", "embed"]);
export const WORKER_ACCEPTS = new Set(["infer", "embed"]);

/** The operation a case's body names, when it is an object naming one. */
export const operationOf = (c: BadCase): string | undefined => {
  const op = typeof c.body === "object" && c.body !== null ? (c.body as { operation?: unknown }).operation : undefined;
  return typeof op === "string" ? op : undefined;
};
