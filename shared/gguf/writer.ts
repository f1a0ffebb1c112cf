/**
 * A small GGUF v3 writer (little-endian): metadata of every GGUF value type and F32/F16/Q8_0 tensors,
 * streamed tensor by tensor so a big model never sits whole in memory.
 */
import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value type ids, as in the spec. */
export const GgufValueType = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

export type GgufValueTypeName = keyof typeof GgufValueType;
export type GgufNumberTypeName = "uint8" | "int8" | "uint16" | "int16" | "uint32" | "int32" | "float32" | "float64";
export type GgufBigTypeName = "uint64" | "int64";
export type GgufArrayItemTypeName = Exclude<GgufValueTypeName, "array">;

export type GgufMetadataValue =
  | { readonly type: GgufNumberTypeName; readonly value: number }
  | { readonly type: GgufBigTypeName; readonly value: number | bigint }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string }
  | {
      readonly type: "array";
      readonly itemType: GgufArrayItemTypeName;
      readonly value: ArrayLike<number | bigint | boolean | string>;
    };

/** Builders for metadata values: `{ "llama.block_count": gguf.uint32(4) }`. */
export const gguf = {
  uint8: (value: number): GgufMetadataValue => ({ type: "uint8", value }),
  int8: (value: number): GgufMetadataValue => ({ type: "int8", value }),
  uint16: (value: number): GgufMetadataValue => ({ type: "uint16", value }),
  int16: (value: number): GgufMetadataValue => ({ type: "int16", value }),
  uint32: (value: number): GgufMetadataValue => ({ type: "uint32", value }),
  int32: (value: number): GgufMetadataValue => ({ type: "int32", value }),
  float32: (value: number): GgufMetadataValue => ({ type: "float32", value }),
  float64: (value: number): GgufMetadataValue => ({ type: "float64", value }),
  uint64: (value: number | bigint): GgufMetadataValue => ({ type: "uint64", value }),
  int64: (value: number | bigint): GgufMetadataValue => ({ type: "int64", value }),
  bool: (value: boolean): GgufMetadataValue => ({ type: "bool", value }),
  string: (value: string): GgufMetadataValue => ({ type: "string", value }),
  array: (itemType: GgufArrayItemTypeName, value: ArrayLike<number | bigint | boolean | string>): GgufMetadataValue => ({
    type: "array",
    itemType,
    value,
  }),
  stringArray: (value: readonly string[]): GgufMetadataValue => ({ type: "array", itemType: "string", value }),
  int32Array: (value: ArrayLike<number>): GgufMetadataValue => ({ type: "array", itemType: "int32", value }),
  uint32Array: (value: ArrayLike<number>): GgufMetadataValue => ({ type: "array", itemType: "uint32", value }),
  float32Array: (value: ArrayLike<number>): GgufMetadataValue => ({ type: "array", itemType: "float32", value }),
};

/** ggml tensor types the writer can encode, with their ggml type ids. */
export const GgmlTensorType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTensorTypeName = keyof typeof GgmlTensorType;

export interface GgufTensorSpec {
  readonly name: string;
  /** ggml order: `shape[0]` is the fastest-varying (row length), e.g. `[n_embd, n_vocab]` for token_embd */
  readonly shape: readonly number[];
  readonly type: GgmlTensorTypeName;
  /** row-major values (`shape[0]` contiguous); a function is called only when the tensor is written */
  readonly data: Float32Array | (() => Float32Array);
}

export interface GgufFileSpec {
  /** written in insertion order; `general.alignment` here (uint32) wins over `alignment` */
  readonly metadata: Readonly<Record<string, GgufMetadataValue>>;
  readonly tensors: readonly GgufTensorSpec[];
  /** tensor data alignment; written as `general.alignment` when not 32 */
  readonly alignment?: number;
}

const textEncoder = new TextEncoder();

/** Grows a little-endian byte buffer; only used for the header, which is small. */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.reserve(1);
    this.view.setUint8(this.length, v);
    this.length += 1;
  }
  i8(v: number): void {
    this.reserve(1);
    this.view.setInt8(this.length, v);
    this.length += 1;
  }
  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }
  i16(v: number): void {
    this.reserve(2);
    this.view.setInt16(this.length, v, true);
    this.length += 2;
  }
  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.reserve(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.reserve(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  f64(v: number): void {
    this.reserve(8);
    this.view.setFloat64(this.length, v, true);
    this.length += 8;
  }
  u64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  i64(v: number | bigint): void {
    this.reserve(8);
    this.view.setBigInt64(this.length, BigInt(v), true);
    this.length += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  str(s: string): void {
    const b = textEncoder.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const rem = this.length % alignment;
    if (rem !== 0) {
      const n = alignment - rem;
      this.reserve(n);
      this.buf.fill(0, this.length, this.length + n);
      this.length += n;
    }
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function checkInteger(key: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`GGUF metadata ${key}: ${v} is out of range`);
}

function writeScalar(sink: ByteSink, key: string, type: GgufArrayItemTypeName, v: unknown): void {
  switch (type) {
    case "uint8":
      checkInteger(key, v as number, 0, 0xff);
      return sink.u8(v as number);
    case "int8":
      checkInteger(key, v as number, -0x80, 0x7f);
      return sink.i8(v as number);
    case "uint16":
      checkInteger(key, v as number, 0, 0xffff);
      return sink.u16(v as number);
    case "int16":
      checkInteger(key, v as number, -0x8000, 0x7fff);
      return sink.i16(v as number);
    case "uint32":
      checkInteger(key, v as number, 0, 0xffffffff);
      return sink.u32(v as number);
    case "int32":
      checkInteger(key, v as number, -0x80000000, 0x7fffffff);
      return sink.i32(v as number);
    case "float32":
      if (typeof v !== "number") throw new TypeError(`GGUF metadata ${key}: expected a number`);
      return sink.f32(v);
    case "float64":
      if (typeof v !== "number") throw new TypeError(`GGUF metadata ${key}: expected a number`);
      return sink.f64(v);
    case "uint64":
    case "int64":
      if (typeof v !== "bigint" && !(typeof v === "number" && Number.isSafeInteger(v))) {
        throw new TypeError(`GGUF metadata ${key}: expected an integer or bigint`);
      }
      if (type === "uint64" ? v < 0 || BigInt(v) >= 2n ** 64n : BigInt(v) < -(2n ** 63n) || BigInt(v) >= 2n ** 63n) {
        throw new RangeError(`GGUF metadata ${key}: ${v} is out of range`);
      }
      return type === "uint64" ? sink.u64(v) : sink.i64(v);
    case "bool":
      if (typeof v !== "boolean") throw new TypeError(`GGUF metadata ${key}: expected a boolean`);
      return sink.u8(v ? 1 : 0);
    case "string":
      if (typeof v !== "string") throw new TypeError(`GGUF metadata ${key}: expected a string`);
      return sink.str(v);
  }
}

function resolveAlignment(spec: GgufFileSpec): number {
  const meta = spec.metadata["general.alignment"];
  let alignment = spec.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  if (meta !== undefined) {
    if (meta.type !== "uint32") throw new TypeError("GGUF metadata general.alignment must be a uint32");
    alignment = meta.value;
  }
  if (!Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(`GGUF alignment must be a power of two, got ${alignment}`);
  }
  return alignment;
}

/** Bytes of one tensor once encoded; Q8_0 stores blocks of 32 values as an f16 scale and 32 int8. */
export function ggmlTensorBytes(type: GgmlTensorTypeName, shape: readonly number[]): number {
  const elements = shape.reduce((a, b) => a * b, 1);
  if (type === "F32") return elements * 4;
  if (type === "F16") return elements * 2;
  return (elements / 32) * 34;
}

function checkTensor(t: GgufTensorSpec): void {
  if (t.shape.length < 1 || t.shape.length > 4) throw new RangeError(`tensor ${t.name}: 1 to 4 dimensions`);
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 1) throw new RangeError(`tensor ${t.name}: bad dimension ${d}`);
  }
  if (t.type === "Q8_0" && (t.shape[0] ?? 0) % 32 !== 0) {
    throw new RangeError(`tensor ${t.name}: Q8_0 needs a row length that is a multiple of 32`);
  }
  if (!(t.type in GgmlTensorType)) throw new TypeError(`tensor ${t.name}: unsupported type ${String(t.type)}`);
}

interface Layout {
  header: Uint8Array;
  offsets: number[];
  alignment: number;
}

function layout(spec: GgufFileSpec): Layout {
  const alignment = resolveAlignment(spec);
  const entries = Object.entries(spec.metadata);
  const writeAlignmentKey = alignment !== GGUF_DEFAULT_ALIGNMENT && spec.metadata["general.alignment"] === undefined;
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(spec.tensors.length);
  sink.u64(entries.length + (writeAlignmentKey ? 1 : 0));
  for (const [key, value] of entries) {
    sink.str(key);
    sink.u32(GgufValueType[value.type]);
    if (value.type === "array") {
      sink.u32(GgufValueType[value.itemType]);
      sink.u64(value.value.length);
      for (let i = 0; i < value.value.length; i++) writeScalar(sink, key, value.itemType, value.value[i]);
    } else {
      writeScalar(sink, key, value.type, value.value);
    }
  }
  if (writeAlignmentKey) {
    sink.str("general.alignment");
    sink.u32(GgufValueType.uint32);
    sink.u32(alignment);
  }
  const names = new Set<string>();
  const offsets: number[] = [];
  let offset = 0;
  for (const t of spec.tensors) {
    checkTensor(t);
    if (names.has(t.name)) throw new Error(`duplicate tensor name ${t.name}`);
    names.add(t.name);
    sink.str(t.name);
    sink.u32(t.shape.length);
    for (const d of t.shape) sink.u64(d);
    sink.u32(GgmlTensorType[t.type]);
    sink.u64(offset);
    offsets.push(offset);
    offset += ggmlTensorBytes(t.type, t.shape);
    offset = Math.ceil(offset / alignment) * alignment;
  }
  sink.pad(alignment);
  return { header: sink.result(), offsets, alignment };
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half from a float, round-to-nearest-even, with plain integer math so every platform agrees. */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0] ?? 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // a carry out of the mantissa bumps the exponent, which is the right rounding (up to infinity)
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

/** Float value of IEEE half bits. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Encodes one tensor's values as its ggml type. */
export function encodeTensorData(type: GgmlTensorTypeName, values: Float32Array): Uint8Array {
  if (type === "F32") {
    const out = new Uint8Array(values.length * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i] ?? 0, true);
    return out;
  }
  if (type === "F16") {
    const out = new Uint8Array(values.length * 2);
    const view = new DataView(out.buffer);
    for (let i = 0; i < values.length; i++) view.setUint16(i * 2, f32ToF16Bits(values[i] ?? 0), true);
    return out;
  }
  // Q8_0 as llama.cpp's quantize_row_q8_0_ref: d = amax/127 stored as f16, q = round-half-away(x/d)
  if (values.length % 32 !== 0) throw new RangeError("Q8_0 needs a multiple of 32 values");
  const blocks = values.length / 32;
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i] ?? 0));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    view.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let i = 0; i < 32; i++) {
      const x = Math.fround((values[b * 32 + i] ?? 0) * id);
      const q = Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
      view.setInt8(b * 34 + 2 + i, Math.max(-127, Math.min(127, q)));
    }
  }
  return out;
}

function tensorValues(t: GgufTensorSpec): Float32Array {
  const values = typeof t.data === "function" ? t.data() : t.data;
  const expected = t.shape.reduce((a, b) => a * b, 1);
  if (values.length !== expected) {
    throw new RangeError(`tensor ${t.name}: ${values.length} values for shape [${t.shape.join(", ")}]`);
  }
  return values;
}

/** The file as a sequence of chunks: the header, then each tensor padded to the alignment. */
export function* ggufChunks(spec: GgufFileSpec): Generator<Uint8Array> {
  const { header, offsets, alignment } = layout(spec);
  yield header;
  let written = 0;
  for (const [i, t] of spec.tensors.entries()) {
    const start = offsets[i] ?? 0;
    if (start > written) {
      yield new Uint8Array(start - written);
      written = start;
    }
    const bytes = encodeTensorData(t.type, tensorValues(t));
    yield bytes;
    written += bytes.length;
  }
  const end = Math.ceil(written / alignment) * alignment;
  if (end > written) yield new Uint8Array(end - written);
}

/** The whole file in memory; for small files and tests. */
export function encodeGguf(spec: GgufFileSpec): Buffer {
  return Buffer.concat([...ggufChunks(spec)]);
}

/**
 * Writes the file atomically: into `<path>.tmp-<pid>-<random>` beside it, fsynced, then renamed over `path`,
 * so a reader never sees a half-written model. Returns the size in bytes.
 */
export async function writeGguf(path: string, spec: GgufFileSpec): Promise<number> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
  const handle = await open(tmp, "wx");
  let size = 0;
  try {
    for (const chunk of ggufChunks(spec)) {
      let off = 0;
      while (off < chunk.length) {
        const { bytesWritten } = await handle.write(chunk, off, chunk.length - off);
        off += bytesWritten;
      }
      size += chunk.length;
    }
    await handle.sync();
    await handle.close();
  } catch (err) {
    await handle.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw err;
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  return size;
}
