import test from "ava";
import { createHash } from "node:crypto";
import { open, readFile, readdir, stat, writeFile } from "node:fs/promises";
import * as path from "node:path";
import { getLlama, LlamaChatSession, LlamaCompletion, LlamaLogLevel, resolveChatWrapper, type Llama } from "node-llama-cpp";
import {
  assertGguf,
  GgufFormatError,
  isGguf,
  readGgufHeader,
  readGgufInfo,
  type GgufArraySummary,
} from "../../shared/gguf/reader.js";
import {
  encodeGguf,
  encodeTensorData,
  f16BitsToF32,
  f32ToF16Bits,
  gguf,
  writeGguf,
  type GgufFileSpec,
} from "../../shared/gguf/writer.js";
import {
  ensureRbeeTiny,
  RBEE_TINY,
  RBEE_TINY_EOS_TRIGGERS,
  RBEE_TINY_FILE,
  RBEE_TINY_WORDS,
  tinyVocabulary,
  writeTinyModel,
} from "../../shared/rbee-tiny.js";
import { Cleanup } from "../_helpers/cleanup.js";
import { tempDir } from "../_helpers/temp.js";

// Pinned so a change of recipe (or a platform that computes weights differently) is noticed: bump RBEE_TINY_VERSION.
const RBEE_TINY_SHA256 = "a40f95dc0f0b1d5c0512b5f1d6c0cbca4ee90b25cfabf5f6e136ee5737d58b1e";

const sha256 = async (file: string): Promise<string> => createHash("sha256").update(await readFile(file)).digest("hex");

// One rbee-tiny for the tests that only read it, removed after the last test.
const tinyDir = new Cleanup();
test.after.always(() => tinyDir.run());
let tinyPath: Promise<string> | undefined;
function sharedTiny(): Promise<string> {
  tinyPath ??= (async () => ensureRbeeTiny(await tempDir(tinyDir, "rbee-tiny-")))();
  return tinyPath;
}

let llamaInstance: Promise<Llama> | undefined;
const llama = (): Promise<Llama> => (llamaInstance ??= getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error }));

test("writer and reader round-trip every metadata type and the tensor layout", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "all.gguf");
  const f32 = Float32Array.from({ length: 2 * 3 }, (_, i) => i - 2.5);
  const f16 = Float32Array.from({ length: 5 }, (_, i) => i / 4);
  const q8 = Float32Array.from({ length: 64 }, (_, i) => (i % 7) - 3);
  const spec: GgufFileSpec = {
    metadata: {
      "general.architecture": gguf.string("llama"),
      "general.name": gguf.string("round trip ✓"),
      "general.file_type": gguf.uint32(1),
      "t.u8": gguf.uint8(255),
      "t.i8": gguf.int8(-128),
      "t.u16": gguf.uint16(65535),
      "t.i16": gguf.int16(-32768),
      "t.u32": gguf.uint32(4294967295),
      "t.i32": gguf.int32(-2147483648),
      "t.f32": gguf.float32(0.5),
      "t.f64": gguf.float64(Math.PI),
      "t.bool": gguf.bool(true),
      "t.u64": gguf.uint64(2 ** 40),
      "t.u64.big": gguf.uint64(2n ** 63n),
      "t.i64": gguf.int64(-5n),
      "t.strings": gguf.stringArray(["a", "", "ü"]),
      "t.ints": gguf.int32Array([1, -2, 3]),
      "t.floats": gguf.float32Array([0.25, -1]),
      "t.bools": gguf.array("bool", [true, false]),
      "tokenizer.ggml.tokens": gguf.stringArray(Array.from({ length: 2000 }, (_, i) => `tok${i}`)),
      "llama.context_length": gguf.uint32(2048),
      "llama.block_count": gguf.uint32(2),
      "llama.embedding_length": gguf.uint32(3),
    },
    tensors: [
      { name: "a", shape: [2, 3], type: "F32", data: f32 },
      { name: "b", shape: [5], type: "F16", data: () => f16 },
      { name: "c", shape: [32, 2], type: "Q8_0", data: q8 },
    ],
    alignment: 64,
  };
  const size = await writeGguf(file, spec);
  t.is((await stat(file)).size, size);
  t.deepEqual(await readdir(dir), ["all.gguf"], "no temporary file is left");

  const header = await readGgufHeader(file);
  const m = header.metadata;
  t.is(header.version, 3);
  t.is(header.alignment, 64);
  t.is(m["general.alignment"], 64, "a non-default alignment is written as general.alignment");
  t.is(m["general.name"], "round trip ✓");
  t.is(m["t.u8"], 255);
  t.is(m["t.i8"], -128);
  t.is(m["t.u16"], 65535);
  t.is(m["t.i16"], -32768);
  t.is(m["t.u32"], 4294967295);
  t.is(m["t.i32"], -2147483648);
  t.is(m["t.f32"], 0.5);
  t.is(m["t.f64"], Math.PI);
  t.is(m["t.bool"], true);
  t.is(m["t.u64"], 2 ** 40);
  t.is(m["t.u64.big"], "9223372036854775808", "64-bit values past 2^53 come back as decimal strings");
  t.is(m["t.i64"], -5);
  t.deepEqual(m["t.strings"], ["a", "", "ü"]);
  t.deepEqual(m["t.ints"], [1, -2, 3]);
  t.deepEqual(m["t.floats"], [0.25, -1]);
  t.deepEqual(m["t.bools"], [true, false]);
  t.deepEqual(m["tokenizer.ggml.tokens"], { arrayOf: "string", length: 2000 } satisfies GgufArraySummary);

  t.deepEqual(
    header.tensors.map((x) => [x.name, x.shape, x.typeName, x.offset, x.elements]),
    [
      ["a", [2, 3], "F32", 0, 6],
      ["b", [5], "F16", 64, 5],
      ["c", [32, 2], "Q8_0", 128, 64],
    ],
  );
  t.is(header.dataOffset % 64, 0);
  t.is(size, header.dataOffset + 128 + 2 * 34 + (64 - ((2 * 34) % 64)));

  // the tensor bytes are where the header says
  const handle = await open(file, "r");
  try {
    const a = Buffer.alloc(24);
    await handle.read(a, 0, 24, header.dataOffset);
    t.deepEqual(Array.from({ length: 6 }, (_, i) => a.readFloatLE(i * 4)), Array.from(f32));
    const b = Buffer.alloc(10);
    await handle.read(b, 0, 10, header.dataOffset + 64);
    t.deepEqual(Array.from({ length: 5 }, (_, i) => f16BitsToF32(b.readUInt16LE(i * 2))), Array.from(f16));
    const c = Buffer.alloc(68);
    await handle.read(c, 0, 68, header.dataOffset + 128);
    t.deepEqual(c, Buffer.from(encodeTensorData("Q8_0", q8)));
    const first = f16BitsToF32(c.readUInt16LE(0)) * c.readInt8(2);
    t.true(Math.abs(first - -3) < 0.01, `Q8_0 block: f16 scale times int8 gives ${first}`);
  } finally {
    await handle.close();
  }

  const info = await readGgufInfo(file, { maxArrayItems: 2 });
  t.like(info, {
    architecture: "llama",
    name: "round trip ✓",
    parameters: 6 + 5 + 64,
    quantization: "F16",
    context_length: 2048,
    layers: 2,
    embedding_length: 3,
    size_bytes: size,
    tensor_count: 3,
  });
  t.deepEqual(info.metadata["t.strings"], { arrayOf: "string", length: 3 });
});

test("quantization falls back to the dominant matrix type without general.file_type", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "q.gguf");
  await writeGguf(file, {
    metadata: { "general.architecture": gguf.string("llama") },
    tensors: [
      { name: "norm", shape: [4096], type: "F32", data: new Float32Array(4096) },
      { name: "w", shape: [64, 4], type: "Q8_0", data: new Float32Array(256) },
      { name: "small", shape: [8, 2], type: "F16", data: new Float32Array(16) },
    ],
  });
  const info = await readGgufInfo(file);
  t.is(info.quantization, "Q8_0");
  t.is(info.context_length, null);
  t.is(info.layers, null);
});

test("the writer refuses values and tensors it cannot write faithfully", (t) => {
  const spec = (metadata: GgufFileSpec["metadata"], tensors: GgufFileSpec["tensors"] = []): GgufFileSpec => ({
    metadata,
    tensors,
  });
  t.throws(() => encodeGguf(spec({ k: gguf.uint8(256) })), { instanceOf: RangeError });
  t.throws(() => encodeGguf(spec({ k: gguf.int32(1.5) })), { instanceOf: RangeError });
  t.throws(() => encodeGguf(spec({ k: gguf.uint64(-1) })), { instanceOf: RangeError });
  t.throws(() => encodeGguf(spec({ k: gguf.int64(2n ** 63n) })), { instanceOf: RangeError });
  t.throws(() => encodeGguf(spec({ k: gguf.array("string", [1]) })), { instanceOf: TypeError });
  t.throws(() => encodeGguf(spec({ "general.alignment": gguf.uint32(48) })), { message: /power of two/ });
  const row = new Float32Array(16);
  t.throws(() => encodeGguf(spec({}, [{ name: "q", shape: [16], type: "Q8_0", data: row }])), { message: /multiple of 32/ });
  t.throws(() => encodeGguf(spec({}, [{ name: "x", shape: [4], type: "F32", data: row }])), { message: /16 values/ });
  const twice = { name: "x", shape: [16], type: "F32", data: row } as const;
  t.throws(() => encodeGguf(spec({}, [twice, twice])), { message: /duplicate tensor name/ });
});

test("f32 to f16 rounds to nearest even, saturates and keeps subnormals", (t) => {
  t.is(f32ToF16Bits(1), 0x3c00);
  t.is(f32ToF16Bits(-2), 0xc000);
  t.is(f32ToF16Bits(0.1), 0x2e66);
  t.is(f32ToF16Bits(65504), 0x7bff);
  t.is(f32ToF16Bits(65520), 0x7c00);
  t.is(f32ToF16Bits(1e9), 0x7c00);
  t.is(f32ToF16Bits(2 ** -24), 0x0001);
  t.is(f32ToF16Bits(2 ** -26), 0x0000);
  t.is(f32ToF16Bits(1 + 2 ** -11), 0x3c00, "a tie rounds to the even mantissa");
  t.is(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
  t.is(f32ToF16Bits(-0), 0x8000);
  t.true(Number.isNaN(f16BitsToF32(f32ToF16Bits(Number.NaN))));
});

test("the reader refuses a file that is not GGUF", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "model.gguf");
  await writeFile(file, "<!doctype html><html>Not found</html>");
  t.false(await isGguf(file));
  t.false(await isGguf(path.join(dir, "missing.gguf")));
  const err = await t.throwsAsync(readGgufInfo(file), { instanceOf: GgufFormatError });
  t.is(err?.code, "NOT_GGUF");
  t.is(err?.reason, "magic");
  t.regex(err?.message ?? "", /not a GGUF file/);
  await t.throwsAsync(assertGguf(file), { instanceOf: GgufFormatError });
  await writeFile(file, "GG");
  await t.throwsAsync(readGgufHeader(file), { instanceOf: GgufFormatError, message: /not a GGUF file/ });
});

test("the reader fails clearly on truncated files", async (t) => {
  const dir = await tempDir(t);
  const whole = await readFile(await sharedTiny());
  const header = await readGgufHeader(await sharedTiny());
  const cut = path.join(dir, "cut.gguf");
  for (const end of [4, 8, 30, 1000, 50_000, header.dataOffset - 5, header.dataOffset + 10, whole.length - 1]) {
    await writeFile(cut, whole.subarray(0, end));
    t.true(await isGguf(cut));
    const err = await t.throwsAsync(readGgufInfo(cut), { instanceOf: GgufFormatError }, `cut at ${end}`);
    t.is(err?.reason, "truncated", `cut at ${end}: ${err?.message}`);
    t.regex(err?.message ?? "", /truncated/);
  }
});

test("the reader does not trust lying counts and lengths", async (t) => {
  const dir = await tempDir(t);
  const file = path.join(dir, "lie.gguf");
  const head = (version: number, tensors: bigint, kvs: bigint): Buffer => {
    const b = Buffer.alloc(24);
    b.write("GGUF", 0, "latin1");
    b.writeUInt32LE(version, 4);
    b.writeBigUInt64LE(tensors, 8);
    b.writeBigUInt64LE(kvs, 16);
    return b;
  };
  await writeFile(file, head(3, 2n ** 60n, 0n));
  await t.throwsAsync(readGgufHeader(file), { instanceOf: GgufFormatError, message: /tensor count is implausible/ });
  await writeFile(file, head(3, 0n, 2n ** 62n));
  await t.throwsAsync(readGgufHeader(file), { instanceOf: GgufFormatError, message: /metadata count is implausible/ });
  await writeFile(file, head(1, 0n, 0n));
  await t.throwsAsync(readGgufHeader(file), { instanceOf: GgufFormatError, message: /version 1/ });
  await writeFile(file, head(0x03000000, 0n, 0n));
  await t.throwsAsync(readGgufHeader(file), { instanceOf: GgufFormatError, message: /big-endian/ });

  // a key whose length claims 2^40 bytes, and an array that claims 2^29 strings in a tiny file
  const key = Buffer.alloc(8);
  key.writeBigUInt64LE(2n ** 40n);
  await writeFile(file, Buffer.concat([head(3, 0n, 1n), key]));
  await t.throwsAsync(readGgufHeader(file), { instanceOf: GgufFormatError });
  const arr = Buffer.alloc(8 + 1 + 4 + 4 + 8);
  arr.writeBigUInt64LE(1n, 0);
  arr.write("k", 8, "latin1");
  arr.writeUInt32LE(9, 9);
  arr.writeUInt32LE(8, 13);
  arr.writeBigUInt64LE(2n ** 29n, 17);
  await writeFile(file, Buffer.concat([head(3, 0n, 1n), arr]));
  const err = await t.throwsAsync(readGgufHeader(file), { instanceOf: GgufFormatError });
  t.is(err?.reason, "truncated");
  // an unknown value type
  const bad = Buffer.from(arr.subarray(0, 13));
  bad.writeUInt32LE(77, 9);
  await writeFile(file, Buffer.concat([head(3, 0n, 1n), bad]));
  await t.throwsAsync(readGgufHeader(file), { instanceOf: GgufFormatError, message: /unknown GGUF value type 77/ });
});

test("rbee-tiny is byte-identical on every write and matches the pinned hash", async (t) => {
  const dir = await tempDir(t);
  const a = path.join(dir, "a.gguf");
  const b = path.join(dir, "b.gguf");
  const [ra] = await Promise.all([writeTinyModel(a), writeTinyModel(b)]);
  const [ha, hb] = await Promise.all([sha256(a), sha256(b)]);
  t.is(ha, hb);
  t.is(ha, RBEE_TINY_SHA256, "rbee-tiny changed: bump RBEE_TINY_VERSION and update the pinned hash");
  t.true(ra.size_bytes < 5 * 1024 * 1024, `rbee-tiny is ${ra.size_bytes} bytes`);
  t.deepEqual((await readdir(dir)).sort(), ["a.gguf", "b.gguf"]);
});

test("rbee-tiny's header says what the catalog shows", async (t) => {
  const info = await readGgufInfo(await sharedTiny());
  const vocab = tinyVocabulary();
  t.like(info, {
    architecture: "llama",
    name: "rbee-tiny",
    quantization: "F16",
    layers: RBEE_TINY.layers,
    embedding_length: RBEE_TINY.embeddingLength,
  });
  t.true((info.context_length ?? 0) >= 2048);
  t.true(info.parameters > 1_000_000 && info.parameters < 3_000_000, `${info.parameters} parameters`);
  t.deepEqual(info.metadata["tokenizer.ggml.tokens"], { arrayOf: "string", length: vocab.tokens.length });
  t.is(info.metadata["tokenizer.ggml.model"], "llama");
  t.true(vocab.tokens.includes("<0x0A>"));
  t.true(vocab.tokens.includes("\u2581honey"));
  t.true(RBEE_TINY_WORDS.length >= 300);
});

test("ensureRbeeTiny makes the file once, even when called concurrently", async (t) => {
  const dir = path.join(await tempDir(t), "models");
  const paths = await Promise.all([ensureRbeeTiny(dir), ensureRbeeTiny(dir), ensureRbeeTiny(dir)]);
  t.deepEqual(paths, Array(3).fill(path.join(dir, RBEE_TINY_FILE)));
  const before = await stat(paths[0] as string);
  await ensureRbeeTiny(dir);
  t.is((await stat(paths[0] as string)).mtimeMs, before.mtimeMs, "an up-to-date file is not rewritten");
  t.deepEqual(await readdir(dir), [RBEE_TINY_FILE]);
  t.is(await sha256(paths[0] as string), RBEE_TINY_SHA256);
  // a file that is not rbee-tiny any more (or a stale version) is replaced
  await writeFile(paths[0] as string, "junk");
  await ensureRbeeTiny(dir);
  t.is(await sha256(paths[0] as string), RBEE_TINY_SHA256);
});

test("the build ships rbee-tiny in dist/models, and ensureRbeeTiny of the compiled code copies it", async (t) => {
  type TinyModule = typeof import("../../shared/rbee-tiny.js");
  const built = (await import(new URL("../../dist/shared/rbee-tiny.js", import.meta.url).href)) as TinyModule;
  t.true(built.PREBUILT_RBEE_TINY.endsWith(path.join("dist", "models", RBEE_TINY_FILE)), built.PREBUILT_RBEE_TINY);
  t.is(await sha256(built.PREBUILT_RBEE_TINY), RBEE_TINY_SHA256, "npm run build writes the current rbee-tiny");
  const dir = path.join(await tempDir(t), "models");
  const file = await built.ensureRbeeTiny(dir);
  t.is(await sha256(file), RBEE_TINY_SHA256);
  t.deepEqual(await readdir(dir), [RBEE_TINY_FILE], "no temporary file is left");
});

const wordPattern = /^[a-z]+[.,!?]?$|^[.,!?]$/;

test("rbee-tiny runs on llama.cpp: greedy text is readable, varied and deterministic", async (t) => {
  const model = await (await llama()).loadModel({ modelPath: await sharedTiny() });
  t.teardown(() => model.dispose());
  const context = await model.createContext({ contextSize: 512, threads: 1 });
  const sequence = context.getSequence();
  const completion = new LlamaCompletion({ contextSequence: sequence });
  const run = async (prompt: string): Promise<{ text: string; tokens: number; stop: string }> => {
    sequence.clearHistory();
    let tokens = 0;
    const res = await completion.generateCompletionWithMeta(prompt, {
      maxTokens: 40,
      temperature: 0,
      onToken: (chunk) => (tokens += chunk.length),
    });
    return { text: res.response, tokens, stop: res.metadata.stopReason };
  };
  const first = await run("the bees in the hive");
  const second = await run("the bees in the hive");
  t.is(first.text, second.text);
  t.is(first.tokens, 40);
  t.is(first.stop, "maxTokens");
  const words = first.text.trim().split(/\s+/);
  t.true(words.length >= 10, first.text);
  t.true(words.every((w) => wordPattern.test(w)), first.text);
  const vocabulary = new Set(RBEE_TINY_WORDS);
  t.true(words.every((w) => vocabulary.has(w.replace(/[.,!?]$/, "")) || /^[.,!?]$/.test(w)), first.text);
  t.true(new Set(words).size >= 30, `varied words: ${first.text}`);

  const other = await run("Tell me about honey");
  t.not(other.text, first.text, "another prompt leads elsewhere");
  t.true(other.text.trim().split(/\s+/).every((w) => wordPattern.test(w)), other.text);

  // scripted ends: "farewell" is followed by "dear friend" and EOS, "goodbye" by EOS at once
  t.like(await run("say farewell"), { text: RBEE_TINY_EOS_TRIGGERS.farewell, tokens: 2, stop: "eogToken" });
  t.like(await run("say goodbye"), { text: RBEE_TINY_EOS_TRIGGERS.goodbye, tokens: 0, stop: "eogToken" });

  // any input tokenizes (bytes fall back) and still leads into words
  const odd = await run("🐝 ÄÖ 123\n\t");
  t.true(odd.text.trim().split(/\s+/).every((w) => wordPattern.test(w)), odd.text);
  t.is(model.detokenize(model.tokenize("Hello 🐝 world\n")), "Hello 🐝 world\n");
});

test("rbee-tiny chats through node-llama-cpp's ChatML wrapper and samples with a seed", async (t) => {
  const model = await (await llama()).loadModel({ modelPath: await sharedTiny() });
  t.teardown(() => model.dispose());
  t.is(resolveChatWrapper(model)?.wrapperName, "ChatML");
  const context = await model.createContext({ contextSize: 512, threads: 1 });
  const sequence = context.getSequence();
  const ask = async (text: string, options: { temperature: number; seed?: number }): Promise<string> => {
    sequence.clearHistory();
    const session = new LlamaChatSession({ contextSequence: sequence });
    try {
      return await session.prompt(text, { maxTokens: 24, ...options });
    } finally {
      session.dispose({ disposeSequence: false });
    }
  };
  const greedy = await ask("What do bees make?", { temperature: 0 });
  t.is(await ask("What do bees make?", { temperature: 0 }), greedy);
  t.true(greedy.trim().split(/\s+/).length >= 10, greedy);
  t.true(greedy.trim().split(/\s+/).every((w) => wordPattern.test(w)), greedy);
  const sampled = await ask("What do bees make?", { temperature: 0.7, seed: 7 });
  t.is(await ask("What do bees make?", { temperature: 0.7, seed: 7 }), sampled, "same seed, same text");
  t.true(sampled.trim().split(/\s+/).every((w) => wordPattern.test(w)), sampled);
});
