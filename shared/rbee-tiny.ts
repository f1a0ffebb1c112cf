/**
 * rbee-tiny: a small llama-architecture GGUF written by rbee itself, so tests and demos run the real llama.cpp
 * path with no download. Its weights are deterministic (own PRNG, integer and IEEE-exact float math only), so
 * every write is byte-for-byte the same, and they are built, not trained: a bigram walk over a word-level
 * vocabulary with a context-driven repeat penalty (see designEmbeddings), so its text is random but readable words.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, rename, unlink } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readGgufHeader } from "./gguf/reader.js";
import {
  gguf,
  writeGguf,
  type GgmlTensorTypeName,
  type GgufFileSpec,
  type GgufMetadataValue,
  type GgufTensorSpec,
} from "./gguf/writer.js";

export const RBEE_TINY_ID = "rbee-tiny";
export const RBEE_TINY_FILE = "rbee-tiny.gguf";
/** Bumped whenever the bytes rbee-tiny is written with change; ensureRbeeTiny rewrites an older file. */
export const RBEE_TINY_VERSION = 1;
const VERSION_KEY = "rbee.tiny.version";

export interface TinyModelOptions {
  /** general.name (default "rbee-tiny") */
  readonly name?: string;
  /** n_embd (default 128) */
  readonly embeddingLength?: number;
  /** block count (default 4) */
  readonly layers?: number;
  /** attention heads (default 4); embeddingLength must divide by it */
  readonly heads?: number;
  /** key/value heads, grouped-query attention (default heads / 2 when even, else heads) */
  readonly headsKv?: number;
  /** FFN hidden size (default 384) */
  readonly feedForwardLength?: number;
  /** total tokens; the built-in word vocabulary is padded with unused tokens up to it (default: no padding) */
  readonly vocabularySize?: number;
  /** trained context length (default 4096) */
  readonly contextLength?: number;
  /** matrix storage type (default F16); norms are always F32 */
  readonly tensorType?: GgmlTensorTypeName;
  /** weight seed (default 1) */
  readonly seed?: number;
}

/** rbee-tiny itself: about 1.7M parameters, 3.5 MB, context 4096, 3518 tokens. */
export const RBEE_TINY: Required<TinyModelOptions> = {
  name: RBEE_TINY_ID,
  embeddingLength: 128,
  layers: 4,
  heads: 4,
  headsKv: 2,
  feedForwardLength: 384,
  vocabularySize: 0,
  contextLength: 4096,
  tensorType: "F16",
  seed: 1,
};

/** A ~106M-parameter model for benchmarks (F16 about 212 MB, Q8_0 about 113 MB), same vocabulary and recipe. */
export const RBEE_BENCH_100M: TinyModelOptions = {
  name: "rbee-bench-100m",
  embeddingLength: 768,
  layers: 8,
  heads: 12,
  headsKv: 12,
  feedForwardLength: 2048,
  vocabularySize: 32000,
  contextLength: 2048,
  tensorType: "F16",
};

// Common English words first (their order is their score), then bee words; lowercase a-z only.
const WORDS_TEXT = `
  the of and to in is it you that he was for on are with as they be at one have this from or had by hot but
  some what there we can out other were all your when up use word how said an each she which do their time if
  will way about many then them would write like so these her long make thing see him two has look more day
  could go come did my sound no most number who over know water than call first people may down side been now
  find any new work part take get place made live where after back little only round man year came show every
  good me give our under name very through just form much great think say help low line before turn cause
  same mean differ move right boy old too does tell sentence set three want air well also play small end put
  home read hand port large spell add even land here must big high such follow act why ask men change went
  light kind off need house picture try us again animal point mother world near build self earth father head
  stand own page should country found answer school grow study still learn plant cover food sun four thought
  let keep eye never last door between city tree cross since hard start might story saw far sea draw left
  late run while press close night real life few stop open seem together next white children begin got walk
  example ease paper often always music those both mark book letter until mile river car feet care second
  group carry took rain eat room began idea fish mountain north once base hear horse cut sure watch color
  face wood main enough plain girl usual young ready above ever red list though feel talk bird soon body dog
  family direct pose leave song measure state product black short numeral class wind question happen complete
  ship area half rock order fire south problem piece told knew pass farm top whole king size heard best hour
  better true during hundred am remember step early hold west ground interest reach fast five sing listen six
  table travel less morning ten simple several vowel toward war lay against pattern slow center love person
  money serve appear road map science rule govern pull cold notice voice fall power town fine certain fly
  unit lead cry dark machine note wait plan figure star box noun field rest correct able pound done beauty
  drive stood contain front teach week final gave green oh quick develop sleep warm free minute strong
  special mind behind clear tail produce fact street inch lot nothing course stay wheel full force blue
  object decide surface deep moon island foot yet busy test record boat common gold possible plane age dry
  wonder laugh thousand ago ran check game shape yes cool miss brought heat snow bed bring sit perhaps fill
  east weight language among bee bees honey hive hives queen worker workers drone drones nectar pollen flower
  flowers comb wax swarm buzz meadow garden clover blossom petal sweet golden summer spring bloom orchard
  lavender sunflower daisy rose apple cherry linden heather thyme wild dance waggle forage colony brood cell
  frame smoker keeper jar amber sting wing wings fuzzy stripe buzzing humming nest bright calm gentle quiet
  soft happy brave clever tiny huge heavy fresh ripe rich smooth sharp steady strange sudden tall thin wide
  ancient silver wooden stone glass forest valley hill lake ocean cloud storm thunder breeze shadow evening
  noon midnight dawn dusk season winter autumn harvest seed root leaf branch grass moss fern berry bread
  butter milk tea cake soup salt candle lamp window bridge path tower castle village market harbor lantern
  hello system user assistant please thanks thank okay maybe today tomorrow yesterday
`;

/** The emittable words of the vocabulary, without the SentencePiece space mark. */
export const RBEE_TINY_WORDS: readonly string[] = [...new Set(WORDS_TEXT.split(/\s+/).filter((w) => w !== ""))];
const PUNCTUATION = [".", ",", "!", "?"] as const;
/**
 * Deterministic end-of-sequence paths, for tests of EOS handling: greedy decoding after a prompt ending in the word
 * "goodbye" ends at once; after "farewell" it says "dear friend" (two tokens) and ends. These words are outside
 * the bigram chain and never come up otherwise. The values are the completions as node-llama-cpp returns them.
 */
export const RBEE_TINY_EOS_TRIGGERS = { goodbye: "", farewell: "dear friend" } as const;
const CHAIN_WORDS = ["goodbye", "farewell", "dear", "friend"] as const;

export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

// llama.cpp token types
const NORMAL = 1;
const UNKNOWN = 2;
const CONTROL = 3;
const UNUSED = 5;
const BYTE = 6;

const SPACE = "\u2581";

export interface TinyVocabulary {
  readonly tokens: readonly string[];
  readonly scores: readonly number[];
  readonly types: readonly number[];
  readonly bos: number;
  readonly eos: number;
  readonly unk: number;
}

/** Token ids and roles of the vocabulary, shared by the writer and the weight builder. */
interface VocabularyPlan extends TinyVocabulary {
  /** ids of the emittable bigram words (words and punctuation) */
  readonly chain: readonly number[];
  /** ids of goodbye, farewell, dear, friend */
  readonly chainWords: readonly number[];
  /** unspaced word id -> its spaced twin */
  readonly twins: ReadonlyMap<number, number>;
}

function buildVocabulary(size: number): VocabularyPlan {
  const tokens: string[] = [];
  const scores: number[] = [];
  const types: number[] = [];
  const ids = new Map<string, number>();
  const add = (text: string, type: number, score: number): number => {
    const existing = ids.get(text);
    if (existing !== undefined) return existing;
    const id = tokens.length;
    tokens.push(text);
    types.push(type);
    scores.push(score);
    ids.set(text, id);
    return id;
  };
  const unk = add("<unk>", UNKNOWN, 0);
  const bos = add("<s>", CONTROL, 0);
  const eos = add("</s>", CONTROL, 0);
  add("<|im_start|>", CONTROL, 0);
  add("<|im_end|>", CONTROL, 0);
  // Every byte stays tokenizable: llama.cpp's SPM tokenizer throws (and aborts the process) on a byte it cannot map.
  // The model never emits them: their output rows carry a large negative bias.
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, BYTE, 0);
  add(SPACE, NORMAL, -5000);
  const chain: number[] = [];
  const words = RBEE_TINY_WORDS.filter((w) => !(CHAIN_WORDS as readonly string[]).includes(w));
  for (const [i, w] of words.entries()) chain.push(add(SPACE + w, NORMAL, -i));
  for (const [i, p] of PUNCTUATION.entries()) chain.push(add(p, NORMAL, -words.length - i));
  const chainWords = CHAIN_WORDS.map((w, i) => add(SPACE + w, NORMAL, -words.length - PUNCTUATION.length - i));
  // Words also come without the space mark (after a newline, or first in a completion prompt: node-llama-cpp
  // tokenizes those with no leading space); never emitted, they read like their spaced twin.
  const twins = new Map<number, number>();
  for (const w of [...words, ...CHAIN_WORDS]) {
    const twin = ids.get(SPACE + w) as number;
    twins.set(add(w, NORMAL, -8000 - tokens.length), twin);
  }
  // SentencePiece only builds a word through pieces that are in the vocabulary, so every prefix is one
  for (const w of [...words, ...CHAIN_WORDS]) {
    for (const full of [SPACE + w, w]) {
      const from = full.startsWith(SPACE) ? 2 : 1;
      for (let n = from; n < full.length; n++) add(full.slice(0, n), NORMAL, -10000 - tokens.length);
    }
  }
  if (size > 0) {
    if (size < tokens.length) throw new RangeError(`vocabularySize must be at least ${tokens.length}`);
    for (let i = 0; tokens.length < size; i++) add(`<unused_${i}>`, UNUSED, -20000);
  }
  return { tokens, scores, types, bos, eos, unk, chain, chainWords, twins };
}

/** The vocabulary rbee-tiny is written with. */
export function tinyVocabulary(vocabularySize = 0): TinyVocabulary {
  const { tokens, scores, types, bos, eos, unk } = buildVocabulary(vocabularySize);
  return { tokens, scores, types, bos, eos, unk };
}

/** mulberry32: 32-bit state, integer ops only, so identical on every platform and Node version. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a of a stream name, so each tensor has its own random stream whatever order tensors are built in. */
function streamSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ Math.imul(seed >>> 0, 0x9e3779b1);
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const SQRT3 = 1.7320508075688772;

/** Uniform values with standard deviation `std` (no transcendental functions: they may differ across engines). */
function uniform(rand: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  const a = std * SQRT3;
  for (let i = 0; i < n; i++) out[i] = (2 * rand() - 1) * a;
  return out;
}

function shuffled(rand: () => number, items: readonly number[]): number[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = out[i] as number;
    out[i] = out[j] as number;
    out[j] = tmp;
  }
  return out;
}

// Logit recipe, before the layers: after word w its first bigram successor scores about LOGIT, the second and
// third LOGIT * STRENGTHS, other words a fixed noise of sd ~0.8 (rows are then corrected until every first
// successor wins by MARGIN); bytes, pieces and control tokens get SUPPRESS. EOS has a negative bias but is a likely
// (never the first) successor of the sentence marks and a few CLOSING_WORDS. Greedy decoding thus walks one cycle
// through all words and never ends by itself; sampling at 0.7 mostly follows the cycle, with random jumps, and
// ends with EOS on about 0.1% of steps (so a 128-token request ends early roughly one time in eight).
const LOGIT = 6;
const STRENGTHS = [1, 0.6, 0.5] as const;
const MARGIN = 1;
const CHAIN_STRENGTH = 2;
const CHAIN_BIAS = -3;
const EOS_BIAS = -1;
const CLOSING_WORDS = 8;
const CLOSING_STRENGTH = 0.6;
const SUPPRESS = -60;
// The residual stream is [bias channel | word identity (A) | context (B)]. Layer 0 attends uniformly (zero
// queries) and writes the mean of the context's word codes (a random projection of A) into B; each word's output
// row reads B through minus its own code. So a word is penalised by about REPEAT_PENALTY times its share of the
// context, which breaks loops the way a frequency penalty does, and the overlap of unrelated codes adds a
// prompt-dependent jitter (sd ~2/sqrt(context tokens)) that fades as the context grows.
const REPEAT_PENALTY = 16;
// Other layers are random attention and FFNs kept small: noise that real inference still has to compute.
const QK_SCALE = 1.7;
const LAYER_NOISE = 0.15;

interface Resolved extends Required<TinyModelOptions> {
  readonly headDim: number;
}

function resolveOptions(options: TinyModelOptions): Resolved {
  const isDefault = options === RBEE_TINY || Object.keys(options).length === 0;
  const base = { ...RBEE_TINY, name: options.name ?? (isDefault ? RBEE_TINY_ID : "rbee-custom") };
  const heads = options.heads ?? base.heads;
  const r = {
    ...base,
    ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    heads,
    headsKv: options.headsKv ?? (options.heads === undefined ? base.headsKv : heads % 2 === 0 ? heads / 2 : heads),
  } as Required<TinyModelOptions>;
  const check = (name: string, v: number, min: number): void => {
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${name} must be an integer >= ${min}, got ${v}`);
  };
  check("embeddingLength", r.embeddingLength, 8);
  check("layers", r.layers, 1);
  check("heads", r.heads, 1);
  check("headsKv", r.headsKv, 1);
  check("feedForwardLength", r.feedForwardLength, 1);
  check("contextLength", r.contextLength, 16);
  check("vocabularySize", r.vocabularySize, 0);
  if (r.embeddingLength % r.heads !== 0) throw new RangeError("embeddingLength must be a multiple of heads");
  if (r.heads % r.headsKv !== 0) throw new RangeError("heads must be a multiple of headsKv");
  const headDim = r.embeddingLength / r.heads;
  if (headDim % 2 !== 0) throw new RangeError("embeddingLength / heads must be even (RoPE)");
  if (r.tensorType === "Q8_0" && (r.embeddingLength % 32 !== 0 || r.feedForwardLength % 32 !== 0)) {
    throw new RangeError("Q8_0 needs embeddingLength and feedForwardLength to be multiples of 32");
  }
  return { ...r, headDim };
}

/** How the residual stream is split: dimension 0 is the bias channel, then A (word identity), then B (context). */
function split(d: number, nKv: number): { a0: number; a1: number; b0: number; b1: number } {
  const dB = Math.min(nKv, Math.max(4, Math.floor(d / 4)));
  return { a0: 1, a1: d - dB, b0: d - dB, b1: d };
}

interface Design {
  embd: Float32Array;
  out: Float32Array;
  /** layer 0 value rows: B-sized random projection of A */
  contextV: Float32Array;
}

/**
 * Token embeddings and output rows. Each emittable word gets a base vector: a constant 1 in the bias channel
 * (which the layers never write) and unit-variance noise in A. Output row j sums the base vectors of the words
 * j follows, weighted by STRENGTHS, so the logit of j after word w is large when j is a successor of w; random
 * vectors in few dimensions overlap, so rows are then corrected until every word's first successor wins by MARGIN.
 */
function designEmbeddings(
  vocab: VocabularyPlan,
  d: number,
  nKv: number,
  stream: (name: string) => () => number,
): Design {
  const { a0, a1, b0, b1 } = split(d, nKv);
  const dA = a1 - a0;
  const dB = b1 - b0;
  const nVocab = vocab.tokens.length;
  const own = [...vocab.chain, ...vocab.chainWords];
  const nOwn = own.length;
  const baseIndex = new Map<number, number>(own.map((id, i) => [id, i]));
  const randBase = stream("base");
  const base = new Float64Array(nOwn * d);
  for (let i = 0; i < nOwn; i++) {
    base[i * d] = 1;
    base.set(uniform(randBase, dA, 1), i * d + a0);
  }

  // successor cycles: each is a single cycle through every word, so no word follows itself
  const n = vocab.chain.length;
  const indices = Array.from({ length: n }, (_, i) => i);
  const cycles = STRENGTHS.map((_, k) => shuffled(stream(`cycle${k}`), indices));
  const first = cycles[0] ?? [];

  // output rows of the candidates (chain words, dear, friend, EOS)
  const [goodbye, farewell, dear, friend] = vocab.chainWords.map((id) => baseIndex.get(id) as number) as [
    number,
    number,
    number,
    number,
  ];
  const candidates = [...vocab.chain, vocab.chainWords[2] as number, vocab.chainWords[3] as number, vocab.eos];
  const rowOf = new Map<number, number>(candidates.map((id, r) => [id, r]));
  const rows = new Float64Array(candidates.length * d);
  const scale = LOGIT / dA;
  const addBase = (row: number, b: number, strength: number): void => {
    const k = scale * strength;
    for (let c = a0; c < a1; c++) rows[row * d + c] = (rows[row * d + c] as number) + k * (base[b * d + c] as number);
  };
  for (const [k, order] of cycles.entries()) {
    for (let i = 0; i < n; i++) addBase(order[(i + 1) % n] as number, order[i] as number, STRENGTHS[k] ?? 0);
  }
  const dearRow = n;
  const friendRow = n + 1;
  const eosRow = n + 2;
  addBase(dearRow, farewell, CHAIN_STRENGTH);
  addBase(friendRow, dear, CHAIN_STRENGTH);
  // the scripted words follow only their trigger, never a sampled noise word
  rows[dearRow * d] = CHAIN_BIAS;
  rows[friendRow * d] = CHAIN_BIAS;
  addBase(eosRow, friend, CHAIN_STRENGTH);
  addBase(eosRow, goodbye, CHAIN_STRENGTH);
  rows[eosRow * d] = EOS_BIAS;
  // EOS is a likely (never the first) successor of the sentence marks and a few words, so sampling ends now and then
  const closingRand = stream("closing");
  const closing = new Set<number>();
  for (const [k, mark] of PUNCTUATION.entries()) if (mark !== ",") closing.add(n - PUNCTUATION.length + k);
  while (closing.size < CLOSING_WORDS) closing.add(Math.floor(closingRand() * n));
  for (const i of closing) addBase(eosRow, i, CLOSING_STRENGTH);

  // what each input word must be followed by, greedily
  const wanted = new Int32Array(nOwn);
  for (let i = 0; i < n; i++) wanted[first[i] as number] = first[(i + 1) % n] as number;
  wanted[goodbye] = eosRow;
  wanted[farewell] = dearRow;
  wanted[dear] = friendRow;
  wanted[friend] = eosRow;

  // logits[i][r]: row r against word i's RMS-normalised embedding (what the final norm sees), kept up to date
  const nCand = candidates.length;
  const xs = new Float64Array(nOwn * d);
  for (let i = 0; i < nOwn; i++) {
    let ss = 0;
    for (let c = 0; c < d; c++) {
      const v = base[i * d + c] as number;
      ss += v * v;
    }
    const inv = 1 / Math.sqrt(ss / d + 1e-5);
    for (let c = 0; c < d; c++) xs[i * d + c] = (base[i * d + c] as number) * inv;
  }
  const logits = new Float64Array(nOwn * nCand);
  for (let i = 0; i < nOwn; i++) {
    for (let r = 0; r < nCand; r++) {
      let dot = 0;
      for (let c = 0; c < a1; c++) dot += (rows[r * d + c] as number) * (xs[i * d + c] as number);
      logits[i * nCand + r] = dot;
    }
  }
  for (let round = 0; ; round++) {
    let fixes = 0;
    for (let i = 0; i < nOwn; i++) {
      const target = wanted[i] as number;
      let best = Number.NEGATIVE_INFINITY;
      for (let r = 0; r < nCand; r++) if (r !== target) best = Math.max(best, logits[i * nCand + r] as number);
      const gap = (logits[i * nCand + target] as number) - best;
      if (gap >= MARGIN) continue;
      fixes++;
      const strength = (MARGIN - gap + 0.25) / LOGIT;
      addBase(target, i, strength);
      const k = scale * strength;
      for (let j = 0; j < nOwn; j++) {
        let dot = 0;
        for (let c = a0; c < a1; c++) dot += (base[i * d + c] as number) * (xs[j * d + c] as number);
        logits[j * nCand + target] = (logits[j * nCand + target] as number) + k * dot;
      }
    }
    if (fixes === 0) break;
    if (round === 50) throw new Error(`rbee-tiny: successor margins did not converge (${fixes} left)`);
  }

  // context codes: code_i = V * (word i's embedding as attn_norm leaves it), V random over A
  const contextV = uniform(stream("context-v"), dB * dA, 1 / Math.sqrt(dA));
  const codes = new Float64Array(nOwn * dB);
  let codeEnergy = 0;
  for (let i = 0; i < nOwn; i++) {
    let ss = 0;
    for (let c = 0; c < d; c++) { const v = base[i * d + c] as number; ss += v * v; }
    const inv = 1 / Math.sqrt(ss / d + 1e-5);
    for (let r = 0; r < dB; r++) {
      let dot = 0;
      for (let c = 0; c < dA; c++) dot += (contextV[r * dA + c] as number) * (base[i * d + a0 + c] as number);
      codes[i * dB + r] = dot * inv;
      codeEnergy += dot * inv * (dot * inv);
    }
  }
  const beta = REPEAT_PENALTY / (codeEnergy / nOwn);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < dB; c++) rows[r * d + b0 + c] = -beta * (codes[r * dB + c] as number);
  }

  // Pieces read like some word, unspaced words like their twin; control, byte and space tokens carry only the bias
  // channel, so what follows them (a chat template's last newline) is chosen by the context alone.
  const aliasRand = stream("alias");
  const embd = new Float32Array(nVocab * d);
  const out = new Float32Array(nVocab * d);
  for (let t = 0; t < nVocab; t++) {
    const type = vocab.types[t];
    if (type === NORMAL && vocab.tokens[t] !== SPACE) {
      const b = baseIndex.get(vocab.twins.get(t) ?? t) ?? Math.floor(aliasRand() * n);
      embd.set(base.subarray(b * d, b * d + d), t * d);
    } else {
      embd[t * d] = 1;
    }
    const r = rowOf.get(t);
    if (r === undefined) out[t * d] = SUPPRESS;
    else out.set(rows.subarray(r * d, r * d + d), t * d);
  }
  return { embd, out, contextV };
}

/** Everything writeGguf needs for a model; tensor data is built lazily, one tensor at a time. */
export function tinyModelSpec(options: TinyModelOptions = {}): GgufFileSpec {
  const o = resolveOptions(options);
  const vocab = buildVocabulary(o.vocabularySize);
  const d = o.embeddingLength;
  const nVocab = vocab.tokens.length;
  const nKv = o.headsKv * o.headDim;
  const stream = (name: string): (() => number) => mulberry32(streamSeed(o.seed, name));

  let designCache: Design | undefined;
  const design = (): Design => {
    designCache ??= designEmbeddings(vocab, d, nKv, stream);
    return designCache;
  };

  const ones = (len: number): Float32Array => new Float32Array(len).fill(1);
  const tensorType = o.tensorType;
  const { a0, a1, b0, b1 } = split(d, nKv);
  type Range = readonly [number, number];
  // rows are outputs, columns inputs; values outside rows x cols are zero
  const matrix = (
    name: string,
    inDim: number,
    outDim: number,
    std: number,
    rows: Range = [0, outDim],
    cols: Range = [0, inDim],
  ): GgufTensorSpec => ({
    name,
    shape: [inDim, outDim],
    type: tensorType,
    data: () => {
      const m = std === 0 ? new Float32Array(inDim * outDim) : uniform(stream(name), inDim * outDim, std);
      for (let r = 0; r < outDim; r++) {
        if (r < rows[0] || r >= rows[1]) m.fill(0, r * inDim, (r + 1) * inDim);
        else {
          m.fill(0, r * inDim, r * inDim + cols[0]);
          m.fill(0, r * inDim + cols[1], (r + 1) * inDim);
        }
      }
      return m;
    },
  });

  const tensors: GgufTensorSpec[] = [
    { name: "token_embd.weight", shape: [d, nVocab], type: tensorType, data: () => design().embd },
    { name: "output_norm.weight", shape: [d], type: "F32", data: () => ones(d) },
    { name: "output.weight", shape: [d, nVocab], type: tensorType, data: () => design().out },
  ];
  const inv = (x: number): number => 1 / Math.sqrt(x);
  const noise = LAYER_NOISE / Math.sqrt(o.layers);
  const nQ = o.heads * o.headDim;
  const dA = a1 - a0;
  const dB = b1 - b0;
  // layer 0 values: rows 0..dB of V are the context projection of A
  const contextValues = (): Float32Array => {
    const v = design().contextV;
    const m = new Float32Array(nKv * d);
    for (let r = 0; r < dB; r++) m.set(v.subarray(r * dA, (r + 1) * dA), r * d + a0);
    return m;
  };
  // layer 0 output: value dim c (group c / headDim) is read from the first head of its group and copied to B
  const contextOutput = (): Float32Array => {
    const m = new Float32Array(d * nQ);
    const perGroup = o.heads / o.headsKv;
    for (let c = 0; c < dB; c++) {
      const head = Math.floor(c / o.headDim) * perGroup;
      m[(b0 + c) * nQ + head * o.headDim + (c % o.headDim)] = 1;
    }
    return m;
  };
  // the layers never write the bias channel (row 0)
  const notBias: Range = [1, d];
  for (let l = 0; l < o.layers; l++) {
    const p = `blk.${l}.`;
    const context = l === 0;
    tensors.push(
      { name: `${p}attn_norm.weight`, shape: [d], type: "F32", data: () => ones(d) },
      matrix(`${p}attn_q.weight`, d, nQ, context ? 0 : QK_SCALE * inv(d)),
      matrix(`${p}attn_k.weight`, d, nKv, QK_SCALE * inv(d)),
      context
        ? { name: `${p}attn_v.weight`, shape: [d, nKv], type: tensorType, data: contextValues }
        : matrix(`${p}attn_v.weight`, d, nKv, inv(d)),
      context
        ? { name: `${p}attn_output.weight`, shape: [nQ, d], type: tensorType, data: contextOutput }
        : matrix(`${p}attn_output.weight`, nQ, d, noise * inv(nQ), notBias),
      { name: `${p}ffn_norm.weight`, shape: [d], type: "F32", data: () => ones(d) },
      matrix(`${p}ffn_gate.weight`, d, o.feedForwardLength, inv(d)),
      matrix(`${p}ffn_up.weight`, d, o.feedForwardLength, inv(d)),
      matrix(`${p}ffn_down.weight`, o.feedForwardLength, d, noise * inv(o.feedForwardLength), notBias),
    );
  }

  const fileType = { F32: 0, F16: 1, Q8_0: 7 }[tensorType];
  const metadata: Record<string, GgufMetadataValue> = {
    "general.architecture": gguf.string("llama"),
    "general.name": gguf.string(o.name),
    "general.description": gguf.string("rbee built-in test model: deterministic constructed weights, random-word output"),
    "general.file_type": gguf.uint32(fileType),
    ...(tensorType === "Q8_0" ? { "general.quantization_version": gguf.uint32(2) } : {}),
    [VERSION_KEY]: gguf.uint32(RBEE_TINY_VERSION),
    "llama.context_length": gguf.uint32(o.contextLength),
    "llama.embedding_length": gguf.uint32(d),
    "llama.block_count": gguf.uint32(o.layers),
    "llama.feed_forward_length": gguf.uint32(o.feedForwardLength),
    "llama.attention.head_count": gguf.uint32(o.heads),
    "llama.attention.head_count_kv": gguf.uint32(o.headsKv),
    "llama.attention.layer_norm_rms_epsilon": gguf.float32(1e-5),
    "llama.rope.dimension_count": gguf.uint32(o.headDim),
    "llama.rope.freq_base": gguf.float32(10000),
    "llama.vocab_size": gguf.uint32(nVocab),
    "tokenizer.ggml.model": gguf.string("llama"),
    "tokenizer.ggml.tokens": gguf.stringArray(vocab.tokens),
    "tokenizer.ggml.scores": gguf.float32Array(vocab.scores),
    "tokenizer.ggml.token_type": gguf.int32Array(vocab.types),
    "tokenizer.ggml.bos_token_id": gguf.uint32(vocab.bos),
    "tokenizer.ggml.eos_token_id": gguf.uint32(vocab.eos),
    "tokenizer.ggml.unknown_token_id": gguf.uint32(vocab.unk),
    "tokenizer.ggml.add_bos_token": gguf.bool(true),
    "tokenizer.ggml.add_eos_token": gguf.bool(false),
    "tokenizer.ggml.add_space_prefix": gguf.bool(true),
    "tokenizer.chat_template": gguf.string(CHATML_TEMPLATE),
  };
  return { metadata, tensors };
}

export interface TinyModelSummary {
  readonly path: string;
  readonly size_bytes: number;
  readonly parameters: number;
  readonly vocabulary_size: number;
}

/** Writes a model built with the rbee-tiny recipe (rbee-tiny itself by default) atomically to `path`. */
export async function writeTinyModel(path: string, options: TinyModelOptions = RBEE_TINY): Promise<TinyModelSummary> {
  const spec = tinyModelSpec(options);
  const size = await writeGguf(path, spec);
  const parameters = spec.tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  const vocabularySize = spec.tensors[0]?.shape[1] ?? 0;
  return { path, size_bytes: size, parameters, vocabulary_size: vocabularySize };
}

const pending = new Map<string, Promise<string>>();

async function currentVersion(path: string): Promise<number | null> {
  try {
    const header = await readGgufHeader(path, { maxArrayItems: 0 });
    const v = header.metadata[VERSION_KEY];
    return typeof v === "number" ? v : null;
  } catch {
    return null;
  }
}

/**
 * rbee-tiny as the build writes it (`npm run build`, so `npm ci` too): dist/models/rbee-tiny.gguf next to the
 * compiled code. Copying it takes milliseconds where writing takes about 300 ms of a cold `rbee infer`. Run from
 * the TypeScript sources there is no such file, and rbee-tiny is written as before.
 */
export const PREBUILT_RBEE_TINY = fileURLToPath(new URL(`../models/${RBEE_TINY_FILE}`, import.meta.url));

/** The build's step (shared/build-assets.ts): writes PREBUILT_RBEE_TINY. */
export async function writePrebuiltRbeeTiny(): Promise<string> {
  await mkdir(fileURLToPath(new URL("../models/", import.meta.url)), { recursive: true });
  await writeTinyModel(PREBUILT_RBEE_TINY, RBEE_TINY);
  return PREBUILT_RBEE_TINY;
}

/**
 * Makes `<modelsDir>/rbee-tiny.gguf` unless an up-to-date one is there, and returns its path: a copy of the
 * build's file when that is of this version, else written here. Safe when several processes do it at once: each
 * writes its own temporary file and renames it into place, and the bytes are identical.
 */
export function ensureRbeeTiny(modelsDir: string): Promise<string> {
  const path = join(modelsDir, RBEE_TINY_FILE);
  const running = pending.get(path);
  if (running !== undefined) return running;
  const job = (async () => {
    if ((await currentVersion(path)) === RBEE_TINY_VERSION) return path;
    await mkdir(modelsDir, { recursive: true });
    if ((await currentVersion(PREBUILT_RBEE_TINY)) === RBEE_TINY_VERSION) {
      const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`;
      try {
        await copyFile(PREBUILT_RBEE_TINY, tmp);
        await rename(tmp, path);
        return path;
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
    }
    await writeTinyModel(path, RBEE_TINY);
    return path;
  })().finally(() => pending.delete(path));
  pending.set(path, job);
  return job;
}
