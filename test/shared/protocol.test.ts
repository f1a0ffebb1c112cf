import test, { type ExecutionContext } from "ava";
import { RbeeError, type ErrorCode } from "../../shared/errors.js";
import {
  HIVE_OPERATIONS, OPERATION_NAMES, QUEEN_OPERATIONS, compactOperation, isModelId, parseOperation, type OperationName,
} from "../../shared/protocol.js";

const ALL = OPERATION_NAMES;

/** The parsed operation as a plain record, for field-by-field checks. */
const parse = (body: unknown): Record<string, unknown> => parseOperation(body, ALL) as unknown as Record<string, unknown>;

/** Expects the body refused with `code`, its message naming `field` (or listing `mentions`). */
function refused(t: ExecutionContext, body: unknown, code: ErrorCode, mentions: string[], accepted: readonly OperationName[] = ALL): void {
  const err = t.throws(() => parseOperation(body, accepted), { instanceOf: RbeeError }, `${JSON.stringify(body)?.slice(0, 120)} was accepted`);
  if (!err) return;
  t.is(err.code, code, err.message);
  for (const m of mentions) t.true(err.message.includes(m), `"${err.message}" does not name ${m}`);
}
/** INVALID_REQUEST whose message starts with the field's name (`max_tokens: ...`, `stop[0]: ...`). */
function invalidField(t: ExecutionContext, body: unknown, field: string): void {
  refused(t, body, "INVALID_REQUEST", [field]);
  const err = (() => {
    try {
      parseOperation(body, ALL);
    } catch (e) {
      return e as Error;
    }
    return undefined;
  })();
  const escaped = field.replace(/[[\].]/g, "\\$&");
  t.regex(err?.message ?? "", new RegExp(`^${escaped}(?:[[.][^:]*)?: `), `the message does not start with ${field}`);
}

const infer = (fields: Record<string, unknown>): Record<string, unknown> => ({ operation: "infer", prompt: "hi", ...fields });
const spawn = (fields: Record<string, unknown>): Record<string, unknown> => ({ operation: "worker_spawn", model: "rbee-tiny", ...fields });

test("infer gets the contract's defaults and nothing else", (t) => {
  const op = parseOperation({ operation: "infer", prompt: "Hello" }, ALL);
  t.deepEqual(op, { operation: "infer", prompt: "Hello", model: "rbee-tiny", max_tokens: 128, temperature: 0.7, ignore_eos: false });
  const withMessages = parseOperation({ operation: "infer", messages: [{ role: "user", content: "Hi" }] }, ALL);
  t.deepEqual(withMessages, {
    operation: "infer", messages: [{ role: "user", content: "Hi" }], model: "rbee-tiny", max_tokens: 128, temperature: 0.7, ignore_eos: false,
  });
});

test("every field of infer is kept as sent when valid", (t) => {
  const body = {
    operation: "infer", prompt: "p", model: "llama-3.2-1b.q4_k_m", max_tokens: 5, temperature: 0, top_p: 0.5, top_k: 40, seed: 7,
    stop: ["\n", "END"], ignore_eos: true, hive_id: "gpu-box", worker_id: "w-1", keep_alive: 0,
  };
  t.deepEqual(parseOperation(body, ALL), body);
});

test("hive operations default hive_id to localhost", (t) => {
  const required: Record<string, Record<string, unknown>> = {
    worker_stop: { worker_id: "w1" }, model_get: { model: "m" }, model_delete: { model: "m" },
    model_download: { model: "https://example.com/m.gguf" }, model_import: { path: "/tmp/m.gguf" },
  };
  for (const name of [...HIVE_OPERATIONS, "hive_start", "hive_stop", "hive_status"] as const) {
    t.is(parse({ operation: name, ...required[name] })["hive_id"], "localhost", name);
  }
  t.is(parse({ operation: "model_list", hive_id: "box-2" })["hive_id"], "box-2");
  const s = parseOperation({ operation: "worker_spawn" }, ALL);
  t.deepEqual(s, { operation: "worker_spawn", hive_id: "localhost", model: "rbee-tiny", device: "auto", gpu_layers: "auto", parallel: 1 });
  t.deepEqual(parseOperation({ operation: "embed", input: "x" }, ALL), { operation: "embed", input: ["x"], model: "rbee-tiny" });
});

test("a body that is not an object is INVALID_REQUEST naming body", (t) => {
  for (const body of [null, [], ["infer"], "infer", 3, true, undefined]) refused(t, body, "INVALID_REQUEST", ["body"]);
});

test("a missing or non-string operation is UNKNOWN_OPERATION", (t) => {
  for (const body of [{}, { prompt: "x" }]) refused(t, body, "UNKNOWN_OPERATION", ["is missing", "infer"]);
  for (const body of [{ operation: 1 }, { operation: null }, { operation: ["infer"] }, { operation: { name: "infer" } }]) {
    refused(t, body, "UNKNOWN_OPERATION", ["must be a string", "infer"]);
  }
});

test("an unknown operation is UNKNOWN_OPERATION listing what this daemon accepts", (t) => {
  refused(t, { operation: "explode" }, "UNKNOWN_OPERATION", ["explode", ...ALL]);
  // A worker accepts only infer and embed: a hive operation sent there is unknown, with the short list.
  const worker = ["infer", "embed"] as const;
  refused(t, { operation: "model_list" }, "UNKNOWN_OPERATION", ["infer", "embed"], worker);
  const err = t.throws(() => parseOperation({ operation: "status" }, worker), { instanceOf: RbeeError });
  t.false(err?.message.includes("hive_start"));
  refused(t, { operation: "INFER", prompt: "x" }, "UNKNOWN_OPERATION", ["infer"], worker);
  for (const name of QUEEN_OPERATIONS) refused(t, { operation: name }, "UNKNOWN_OPERATION", [name], [...HIVE_OPERATIONS]);
  // Names that exist on Object.prototype are not operations.
  for (const name of ["constructor", "__proto__", "toString"]) refused(t, { operation: name }, "UNKNOWN_OPERATION", [name]);
});

test("unknown fields are ignored", (t) => {
  const op = parseOperation({ operation: "infer", prompt: "x", stream: true, n: 1, user: "me", constructor: 5 }, ALL);
  t.false("stream" in op);
  t.false("user" in op);
  t.false(Object.hasOwn(op, "constructor"));
  t.deepEqual(parseOperation({ operation: "status", hive_id: "ignored", extra: [1] }, ALL), { operation: "status" });
});

/** [field, accepted values (both edges), refused values] */
const ranges: [string, unknown[], unknown[]][] = [
  ["max_tokens", [1, 100_000], [0, -1, 1.5, "5", null, true]],
  ["temperature", [0, 2, 0.7, 1], [-0.01, 2.01, "0.5", null]],
  ["top_p", [1, 1e-9, 0.95], [0, -0.1, 1.01, "0.9"]],
  ["top_k", [0, 40], [-1, 1.5, "40"]],
  ["seed", [0, 2 ** 32 - 1], [-1, 2 ** 32, 0.5, "1"]],
  ["stop", [[], ["a"], Array.from({ length: 16 }, (_, i) => `s${i}`)], [Array.from({ length: 17 }, (_, i) => `s${i}`), [""], "END", [1], [null]]],
  ["ignore_eos", [true, false], ["true", 0, 1, null]],
  ["keep_alive", [-1, 0, 300], [-2, 1.5, "300"]],
];

test("every infer range is checked at both edges and the message names the field", (t) => {
  for (const [field, good, bad] of ranges) {
    for (const v of good) {
      t.deepEqual(parse(infer({ [field]: v }))[field], v, `${field}=${JSON.stringify(v)}`);
    }
    for (const v of bad) invalidField(t, infer({ [field]: v }), field);
  }
});

test("worker_spawn ranges: parallel, context_size, keep_alive, gpu_layers, device", (t) => {
  const spawnRanges: [string, unknown[], unknown[]][] = [
    ["parallel", [1, 64], [0, 65, 2.5, "4"]],
    ["context_size", [64, 131072], [63, 0, 64.5, "2048"]],
    ["keep_alive", [-1, 0], [-2, "0"]],
    ["gpu_layers", ["auto", "max", 0, 99], [-1, "all", 1.5, "3", null, true]],
    ["device", ["auto", "cpu", "gpu:0", "gpu:12"], ["gpu", "gpu:", "gpu:x", "cuda", "GPU:0", "cpu ", 0, null]],
  ];
  for (const [field, good, bad] of spawnRanges) {
    for (const v of good) t.deepEqual(parse(spawn({ [field]: v }))[field], v, `${field}=${String(v)}`);
    for (const v of bad) invalidField(t, spawn({ [field]: v }), field);
  }
  invalidField(t, { operation: "embed", input: "x", keep_alive: -5 }, "keep_alive");
});

test("infer needs exactly one of prompt and messages", (t) => {
  invalidField(t, { operation: "infer" }, "prompt");
  invalidField(t, { operation: "infer", prompt: "a", messages: [{ role: "user", content: "b" }] }, "messages");
  invalidField(t, { operation: "infer", prompt: "" }, "prompt");
  invalidField(t, { operation: "infer", prompt: 42 }, "prompt");
  invalidField(t, { operation: "infer", messages: [] }, "messages");
  invalidField(t, { operation: "infer", messages: "hi" }, "messages");
  invalidField(t, { operation: "infer", messages: [{ role: "robot", content: "x" }] }, "messages[0].role");
  invalidField(t, { operation: "infer", messages: [{ role: "user", content: "ok" }, { role: "user", content: 5 }] }, "messages[1].content");
  invalidField(t, { operation: "infer", messages: [{ role: "user" }] }, "messages[0].content");
  invalidField(t, { operation: "infer", messages: ["hi"] }, "messages[0]");
  for (const role of ["system", "user", "assistant"]) {
    t.notThrows(() => parseOperation({ operation: "infer", messages: [{ role, content: "" }] }, ALL));
  }
});

test("embed input is a non-empty string or a non-empty list of them", (t) => {
  t.deepEqual(parse({ operation: "embed", input: ["a", "b"] })["input"], ["a", "b"]);
  for (const input of ["", [], [""], ["a", ""], 3, [3], null, undefined, { text: "a" }]) invalidField(t, { operation: "embed", input }, "input");
});

test("hostile or malformed model ids are refused naming the field", (t) => {
  const hostile = ["../x", "/etc/passwd", "file://x", "a..b", "Rbee-Tiny", "UPPER", "", ".hidden", "-x", "a/b", "a\\b", "a b", "x".repeat(129), "hf:a/b"];
  for (const model of hostile) {
    t.false(isModelId(model), model);
    invalidField(t, infer({ model }), "model");
    invalidField(t, spawn({ model }), "model");
    invalidField(t, { operation: "model_get", model }, "model");
    invalidField(t, { operation: "model_delete", model }, "model");
    invalidField(t, { operation: "embed", input: "x", model }, "model");
    invalidField(t, { operation: "model_import", path: "/m.gguf", name: model }, "name");
    invalidField(t, { operation: "model_download", model: "https://example.com/m.gguf", name: model }, "name");
  }
  for (const model of ["rbee-tiny", "a", "0", "llama-3.2-1b-instruct.q4_k_m", "x".repeat(128)]) {
    t.true(isModelId(model), model);
    t.is(parse(infer({ model }))["model"], model);
  }
  invalidField(t, infer({ model: 5 }), "model");
  invalidField(t, { operation: "model_get" }, "model");
});

test("model_download takes http(s) URLs and hf: references only; model_import an absolute path", (t) => {
  for (const model of ["https://example.com/x/tiny.gguf", "http://127.0.0.1:8080/m.gguf", "https://h.co/r/resolve/main/m.gguf?download=true", "hf:owner/repo/file.gguf", "hf:owner/repo/sub/file-Q4.GGUF"]) {
    t.is(parse({ operation: "model_download", model })["model"], model);
  }
  for (const model of ["file:///etc/passwd", "/etc/passwd", "../x.gguf", "ftp://h/m.gguf", "hf:owner/file.gguf", "hf:o/r/f.bin", "https://", ""]) {
    invalidField(t, { operation: "model_download", model }, "model");
  }
  invalidField(t, { operation: "model_import", path: "relative/m.gguf" }, "path");
  invalidField(t, { operation: "model_import" }, "path");
  invalidField(t, { operation: "worker_stop" }, "worker_id");
  invalidField(t, { operation: "worker_stop", worker_id: "../w" }, "worker_id");
  invalidField(t, { operation: "model_list", hive_id: "Bad Hive" }, "hive_id");
  invalidField(t, { operation: "hive_start", hive_id: 3 }, "hive_id");
  invalidField(t, infer({ worker_id: "" }), "worker_id");
});

test("compactOperation leaves out defaults only: parsing the compact form gives the same operation", (t) => {
  const bodies: object[] = [
    { operation: "infer", prompt: "hi" },
    { operation: "infer", prompt: "hi", model: "rbee-tiny", max_tokens: 128, temperature: 0.7, ignore_eos: false },
    { operation: "infer", messages: [{ role: "user", content: "hi" }], max_tokens: 5, stop: ["\n"], seed: 0, hive_id: "gpu-box" },
    { operation: "worker_spawn", model: "llama", hive_id: "localhost", parallel: 4, gpu_layers: "max", keep_alive: 0 },
    { operation: "model_download", model: "https://example.com/a.gguf", hive_id: "localhost" },
    { operation: "status" },
  ];
  for (const body of bodies) {
    const op = parse(body);
    const compact = compactOperation(op);
    t.deepEqual(parse(compact), op, JSON.stringify(body));
    t.true(JSON.stringify(compact).length <= JSON.stringify(body).length, JSON.stringify(compact));
  }
  t.deepEqual(compactOperation(parse({ operation: "infer", prompt: "hi", temperature: 0.7 })), { operation: "infer", prompt: "hi" });
  t.deepEqual(compactOperation(parse({ operation: "infer", prompt: "hi", temperature: 0 })), { operation: "infer", prompt: "hi", temperature: 0 });
  t.deepEqual(compactOperation({ operation: "nonsense", x: 1 }), { operation: "nonsense", x: 1 }, "not an operation: as it is");
});
