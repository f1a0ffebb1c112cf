/**
 * Reads the header of a GGUF file (metadata and tensor infos) through a small buffered FileHandle reader,
 * never the tensor data: real models are many GB. Lengths read from the file are checked against the file's
 * size before anything is allocated, so a truncated or lying file fails with a clear error.
 */
import { open, type FileHandle } from "node:fs/promises";
import { RbeeError } from "../errors.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, type GgufArrayItemTypeName } from "./writer.js";

/** Why a file was refused; all of them are the contract's NOT_GGUF. */
export type GgufErrorReason = "magic" | "truncated" | "version" | "invalid";

/** A file that is not a readable GGUF; `code` is NOT_GGUF so daemons can pass it on as is. */
export class GgufFormatError extends RbeeError {
  readonly reason: GgufErrorReason;
  readonly path: string;
  constructor(reason: GgufErrorReason, path: string, message: string) {
    super("NOT_GGUF", `${path}: ${message}`);
    this.reason = reason;
    this.path = path;
  }
}

/** An array too long to keep (tokenizer.ggml.tokens, merges, scores): its item type and length only. */
export interface GgufArraySummary {
  readonly arrayOf: GgufArrayItemTypeName;
  readonly length: number;
}

/** A metadata value as read; 64-bit integers are numbers when safe and decimal strings otherwise (JSON-safe). */
export type GgufReadValue = number | boolean | string | readonly (number | boolean | string)[] | GgufArraySummary;

export interface GgufTensorInfo {
  readonly name: string;
  readonly shape: readonly number[];
  /** ggml type id */
  readonly type: number;
  readonly typeName: string;
  /** relative to the start of the tensor data */
  readonly offset: number;
  readonly elements: number;
}

export interface GgufHeader {
  readonly version: number;
  readonly metadata: Readonly<Record<string, GgufReadValue>>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** where the tensor data starts in the file */
  readonly dataOffset: number;
  readonly fileSize: number;
}

/** What the catalog shows of a model; the first fields are the contract's model object. */
export interface GgufInfo {
  readonly architecture: string;
  /** sum of the element counts of all tensors */
  readonly parameters: number;
  /** F32, F16, BF16, Q4_0, Q8_0, Q4_K_M, ... from general.file_type, else the dominant tensor type */
  readonly quantization: string;
  readonly context_length: number | null;
  readonly layers: number | null;
  readonly embedding_length: number | null;
  readonly size_bytes: number;
  readonly name: string | null;
  readonly version: number;
  readonly tensor_count: number;
  readonly metadata: Readonly<Record<string, GgufReadValue>>;
}

export interface GgufReadOptions {
  /** arrays longer than this keep their length only (default 1024) */
  readonly maxArrayItems?: number;
}

const ARRAY_KEEP_DEFAULT = 1024;
// Sane caps on what a header may claim, far above any real model, far below an allocation that hurts.
const MAX_STRING_BYTES = 64 * 1024 * 1024;
const MAX_KEY_BYTES = 64 * 1024;
const MAX_KV_COUNT = 1_000_000;
const MAX_TENSOR_COUNT = 10_000_000;
const MAX_ARRAY_ITEMS = 1_000_000_000;
const MAX_DIMS = 8;

const TYPE_NAMES: readonly (GgufArrayItemTypeName | "array")[] = [
  "uint8",
  "int8",
  "uint16",
  "int16",
  "uint32",
  "int32",
  "float32",
  "bool",
  "string",
  "array",
  "uint64",
  "int64",
  "float64",
];
const FIXED_SIZE: Readonly<Partial<Record<GgufArrayItemTypeName, number>>> = {
  uint8: 1,
  int8: 1,
  bool: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  uint64: 8,
  int64: 8,
  float64: 8,
};

/** ggml tensor type names by id (ggml.h), for the tensor-type fallback of `quantization`. */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  6: "Q5_0",
  7: "Q5_1",
  8: "Q8_0",
  9: "Q8_1",
  10: "Q2_K",
  11: "Q3_K",
  12: "Q4_K",
  13: "Q5_K",
  14: "Q6_K",
  15: "Q8_K",
  16: "IQ2_XXS",
  17: "IQ2_XS",
  18: "IQ3_XXS",
  19: "IQ1_S",
  20: "IQ4_NL",
  21: "IQ3_S",
  22: "IQ2_S",
  23: "IQ4_XS",
  24: "I8",
  25: "I16",
  26: "I32",
  27: "I64",
  28: "F64",
  29: "IQ1_M",
  30: "BF16",
  34: "TQ1_0",
  35: "TQ2_0",
  39: "MXFP4",
  40: "NVFP4",
  41: "Q1_0",
  42: "Q2_0",
};

/** [elements per block, bytes per block] of ggml types (ggml.c type_traits), to check the data is all there. */
const GGML_BLOCKS: Readonly<Record<number, readonly [number, number]>> = {
  0: [1, 4],
  1: [1, 2],
  2: [32, 18],
  3: [32, 20],
  6: [32, 22],
  7: [32, 24],
  8: [32, 34],
  9: [32, 36],
  10: [256, 84],
  11: [256, 110],
  12: [256, 144],
  13: [256, 176],
  14: [256, 210],
  15: [256, 292],
  16: [256, 66],
  17: [256, 74],
  18: [256, 98],
  19: [256, 50],
  20: [32, 18],
  21: [256, 110],
  22: [256, 82],
  23: [256, 136],
  24: [1, 1],
  25: [1, 2],
  26: [1, 4],
  27: [1, 8],
  28: [1, 8],
  29: [256, 56],
  30: [1, 2],
  34: [256, 54],
  35: [256, 66],
  39: [32, 17],
  40: [64, 36],
};

/** Bytes of a tensor's data, or null for a type this table does not know. */
export function ggmlTypeBytes(type: number, elements: number): number | null {
  const block = GGML_BLOCKS[type];
  return block === undefined ? null : Math.ceil(elements / block[0]) * block[1];
}

/** llama.cpp's LLAMA_FTYPE_* names, keyed by general.file_type. */
export const GGUF_FILE_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: "F32",
  1: "F16",
  2: "Q4_0",
  3: "Q4_1",
  4: "Q4_1_SOME_F16",
  7: "Q8_0",
  8: "Q5_0",
  9: "Q5_1",
  10: "Q2_K",
  11: "Q3_K_S",
  12: "Q3_K_M",
  13: "Q3_K_L",
  14: "Q4_K_S",
  15: "Q4_K_M",
  16: "Q5_K_S",
  17: "Q5_K_M",
  18: "Q6_K",
  19: "IQ2_XXS",
  20: "IQ2_XS",
  21: "Q2_K_S",
  22: "IQ3_XS",
  23: "IQ3_XXS",
  24: "IQ1_S",
  25: "IQ4_NL",
  26: "IQ3_S",
  27: "IQ3_M",
  28: "IQ2_S",
  29: "IQ2_M",
  30: "IQ4_XS",
  31: "IQ1_M",
  32: "BF16",
  36: "TQ1_0",
  37: "TQ2_0",
  38: "MXFP4_MOE",
  39: "NVFP4",
  40: "Q1_0",
  41: "Q2_0",
};

/** Sequential little-endian reads over a FileHandle through one reused buffer. */
class HeaderReader {
  private buf: Buffer;
  private bufStart = 0; // file offset of buf[0]
  private bufLen = 0;
  pos = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly fileSize: number,
  ) {
    this.buf = Buffer.alloc(Math.min(1 << 20, Math.max(fileSize, 16)));
  }

  remaining(): number {
    return this.fileSize - this.pos;
  }

  truncated(what: string): GgufFormatError {
    const where = `ends inside ${what} at byte ${this.pos} of ${this.fileSize}`;
    return new GgufFormatError("truncated", this.path, `GGUF file is truncated (${where})`);
  }

  /** Makes `n` bytes at `pos` available in `buf`; `n` never exceeds the buffer by construction of callers. */
  private async ensure(n: number, what: string): Promise<number> {
    if (this.pos + n > this.fileSize) throw this.truncated(what);
    if (this.pos >= this.bufStart && this.pos + n <= this.bufStart + this.bufLen) return this.pos - this.bufStart;
    if (n > this.buf.length) this.buf = Buffer.alloc(n);
    const want = Math.min(this.buf.length, this.fileSize - this.pos);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.handle.read(this.buf, got, want - got, this.pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.bufStart = this.pos;
    this.bufLen = got;
    if (got < n) throw this.truncated(what);
    return 0;
  }

  async u32(what: string): Promise<number> {
    const at = await this.ensure(4, what);
    this.pos += 4;
    return this.buf.readUInt32LE(at);
  }

  async u64(what: string): Promise<bigint> {
    const at = await this.ensure(8, what);
    this.pos += 8;
    return this.buf.readBigUInt64LE(at);
  }

  /** A uint64 that must be a count no larger than `max`. */
  async count(what: string, max: number): Promise<number> {
    const v = await this.u64(what);
    if (v > BigInt(max)) {
      throw new GgufFormatError("invalid", this.path, `GGUF ${what} is implausible (${v}); the file is corrupt`);
    }
    return Number(v);
  }

  async string(what: string, max = MAX_STRING_BYTES, keep = true): Promise<string> {
    const len = await this.count(`${what} length`, max);
    if (len > this.remaining()) throw this.truncated(what);
    if (!keep) {
      this.pos += len;
      return "";
    }
    const at = await this.ensure(len, what);
    this.pos += len;
    return this.buf.toString("utf8", at, at + len);
  }

  skip(n: number, what: string): void {
    if (n > this.remaining()) throw this.truncated(what);
    this.pos += n;
  }

  async scalar(type: GgufArrayItemTypeName, what: string): Promise<number | boolean | string> {
    if (type === "string") return this.string(what);
    const size = FIXED_SIZE[type] ?? 0;
    const at = await this.ensure(size, what);
    this.pos += size;
    const b = this.buf;
    switch (type) {
      case "uint8":
        return b.readUInt8(at);
      case "int8":
        return b.readInt8(at);
      case "uint16":
        return b.readUInt16LE(at);
      case "int16":
        return b.readInt16LE(at);
      case "uint32":
        return b.readUInt32LE(at);
      case "int32":
        return b.readInt32LE(at);
      case "float32":
        return b.readFloatLE(at);
      case "float64":
        return b.readDoubleLE(at);
      case "bool":
        return b.readUInt8(at) !== 0;
      case "uint64":
        return safeInteger(b.readBigUInt64LE(at));
      case "int64":
        return safeInteger(b.readBigInt64LE(at));
      default:
        throw new GgufFormatError("invalid", this.path, `bad GGUF value type in ${what}`);
    }
  }
}

function safeInteger(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
}

function typeName(r: HeaderReader, id: number, what: string): GgufArrayItemTypeName | "array" {
  if (id === 9) return "array";
  const name = TYPE_NAMES[id];
  if (name === undefined) throw new GgufFormatError("invalid", r.path, `unknown GGUF value type ${id} in ${what}`);
  return name;
}

async function readValue(r: HeaderReader, key: string, keepItems: number): Promise<GgufReadValue> {
  const type = typeName(r, await r.u32(`the type of ${key}`), key);
  if (type !== "array") return r.scalar(type, key);
  const itemType = typeName(r, await r.u32(`the item type of ${key}`), key);
  if (itemType === "array") {
    throw new GgufFormatError("invalid", r.path, `nested arrays are not supported (${key})`);
  }
  const length = await r.count(`array length of ${key}`, MAX_ARRAY_ITEMS);
  const minItemSize = itemType === "string" ? 8 : (FIXED_SIZE[itemType] ?? 1);
  // every item takes at least minItemSize bytes, so a length the file cannot hold is caught before any loop
  if (length * minItemSize > r.remaining()) throw r.truncated(`array ${key}`);
  if (length > keepItems) {
    if (itemType === "string") {
      for (let i = 0; i < length; i++) await r.string(key, MAX_STRING_BYTES, false);
    } else {
      r.skip(length * minItemSize, key);
    }
    return { arrayOf: itemType, length };
  }
  const items: (number | boolean | string)[] = [];
  for (let i = 0; i < length; i++) items.push(await r.scalar(itemType, key));
  return items;
}

async function checkMagic(handle: FileHandle, path: string): Promise<void> {
  const head = Buffer.alloc(4);
  const { bytesRead } = await handle.read(head, 0, 4, 0);
  if (bytesRead < 4 || head.readUInt32LE(0) !== GGUF_MAGIC) {
    throw new GgufFormatError("magic", path, "not a GGUF file (the first 4 bytes are not \"GGUF\")");
  }
}

/** Whether the file starts with the GGUF magic; false for a missing or short file. */
export async function isGguf(path: string): Promise<boolean> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch {
    return false;
  }
  try {
    await checkMagic(handle, path);
    return true;
  } catch {
    return false;
  } finally {
    await handle.close();
  }
}

/** Throws GgufFormatError (code NOT_GGUF, reason "magic") unless the file starts with "GGUF". */
export async function assertGguf(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await checkMagic(handle, path);
  } finally {
    await handle.close();
  }
}

/** Metadata and tensor infos of a GGUF v2/v3 file; reads only the header. */
export async function readGgufHeader(path: string, options: GgufReadOptions = {}): Promise<GgufHeader> {
  const keepItems = options.maxArrayItems ?? ARRAY_KEEP_DEFAULT;
  const handle = await open(path, "r");
  try {
    const fileSize = (await handle.stat()).size;
    await checkMagic(handle, path);
    const r = new HeaderReader(handle, path, fileSize);
    r.pos = 4;
    const version = await r.u32("the version");
    if (version !== 2 && version !== 3) {
      const hint = version === 1 ? " (GGUF v1 is obsolete)" : version > 0xffff ? " (big-endian GGUF is not supported)" : "";
      throw new GgufFormatError("version", path, `unsupported GGUF version ${version}${hint}`);
    }
    const tensorCount = await r.count("tensor count", MAX_TENSOR_COUNT);
    const kvCount = await r.count("metadata count", MAX_KV_COUNT);
    const metadata: Record<string, GgufReadValue> = {};
    for (let i = 0; i < kvCount; i++) {
      const key = await r.string(`metadata key #${i}`, MAX_KEY_BYTES);
      metadata[key] = await readValue(r, key, keepItems);
    }
    const alignValue = metadata["general.alignment"];
    const alignment =
      typeof alignValue === "number" && Number.isInteger(alignValue) && alignValue > 0 && (alignValue & (alignValue - 1)) === 0
        ? alignValue
        : GGUF_DEFAULT_ALIGNMENT;
    // each tensor info takes at least 8+4+8+4+8 bytes
    if (tensorCount * 32 > r.remaining()) throw r.truncated("the tensor infos");
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = await r.string(`tensor name #${i}`, MAX_KEY_BYTES);
      const dims = await r.u32(`dimensions of ${name}`);
      if (dims < 1 || dims > MAX_DIMS) {
        throw new GgufFormatError("invalid", path, `tensor ${name} has ${dims} dimensions; the file is corrupt`);
      }
      const shape: number[] = [];
      let elements = 1;
      for (let d = 0; d < dims; d++) {
        const n = await r.count(`dimension of ${name}`, Number.MAX_SAFE_INTEGER);
        shape.push(n);
        elements *= n;
      }
      const type = await r.u32(`type of ${name}`);
      const offset = await r.count(`offset of ${name}`, Number.MAX_SAFE_INTEGER);
      tensors.push({ name, shape, type, typeName: GGML_TYPE_NAMES[type] ?? `type_${type}`, offset, elements });
    }
    const dataOffset = Math.ceil(r.pos / alignment) * alignment;
    for (const t of tensors) {
      const bytes = ggmlTypeBytes(t.type, t.elements);
      if (bytes !== null && dataOffset + t.offset + bytes > fileSize) {
        const end = dataOffset + t.offset + bytes;
        const message = `tensor ${t.name} ends at byte ${end} but the file has ${fileSize} (an incomplete download?)`;
        throw new GgufFormatError("truncated", path, `GGUF file is truncated: ${message}`);
      }
    }
    return { version, metadata, tensors, alignment, dataOffset, fileSize };
  } finally {
    await handle.close();
  }
}

function numberOrNull(v: GgufReadValue | undefined): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** The quantization name: general.file_type when known, else the tensor type holding the most elements. */
export function quantizationName(
  metadata: Readonly<Record<string, GgufReadValue>>,
  tensors: readonly GgufTensorInfo[],
): string {
  const fileType = metadata["general.file_type"];
  if (typeof fileType === "number") {
    // llama.cpp sets bit 10 (LLAMA_FTYPE_GUESSED) when it guessed the type
    const name = GGUF_FILE_TYPE_NAMES[fileType & ~1024];
    if (name !== undefined) return name;
  }
  const byType = new Map<string, number>();
  for (const t of tensors) {
    // 1-D tensors (norms, biases) stay F32 in every quantization, so only matrices decide
    if (t.shape.length < 2) continue;
    byType.set(t.typeName, (byType.get(t.typeName) ?? 0) + t.elements);
  }
  let best = "unknown";
  let bestCount = -1;
  for (const [name, count] of byType) {
    if (count > bestCount) {
      best = name;
      bestCount = count;
    }
  }
  return best;
}

/** The catalog's view of a GGUF file, read from its header only. */
export async function readGgufInfo(path: string, options: GgufReadOptions = {}): Promise<GgufInfo> {
  const header = await readGgufHeader(path, options);
  const { metadata, tensors } = header;
  const arch = metadata["general.architecture"];
  if (typeof arch !== "string" || arch === "") {
    throw new GgufFormatError("invalid", path, "GGUF file has no general.architecture");
  }
  const name = metadata["general.name"];
  return {
    architecture: arch,
    parameters: tensors.reduce((sum, t) => sum + t.elements, 0),
    quantization: quantizationName(metadata, tensors),
    context_length: numberOrNull(metadata[`${arch}.context_length`]),
    layers: numberOrNull(metadata[`${arch}.block_count`]),
    embedding_length: numberOrNull(metadata[`${arch}.embedding_length`]),
    size_bytes: header.fileSize,
    name: typeof name === "string" ? name : null,
    version: header.version,
    tensor_count: tensors.length,
    metadata,
  };
}
