/**
 * The one file that talks to node-llama-cpp: GPU choice, model and context loading, prompt rendering,
 * token-by-token generation on a context sequence, and embeddings.
 */
import { randomInt } from "node:crypto";
import { stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import {
  GgufInsights, InsufficientMemoryError, LlamaLogLevel, TokenBias, getLlama, readGgufFileInfo, resolveChatWrapper,
  type Llama, type LlamaContext, type LlamaContextSequence, type LlamaEmbeddingContext, type LlamaModel, type Token,
} from "node-llama-cpp";
import { RbeeError } from "../../shared/errors.js";
import type { ChatMessage, FinishReason, GpuLayers } from "../../shared/protocol.js";
import { formatBytes } from "../../shared/units.js";
import { GPU_NAMES, type GpuType } from "./format.js";
import { StopMatcher } from "./stop-strings.js";
import { chooseThreads } from "./threads.js";

export interface EngineOptions {
  modelPath: string;
  device: string;
  gpuLayers: GpuLayers;
  /** tokens per sequence; default: the model's trained context, at most 4096 */
  contextSize: number | undefined;
  parallel: number;
  threads: number | undefined;
}

export interface LoadReporter {
  narrate(action: string, human: string, level?: "debug" | "info" | "warn"): void;
  progress(done: number, total: number): void;
  log(level: "warn" | "error", message: string): void;
}

export interface EngineInfo {
  gpu: GpuType | false;
  gpu_layers: number;
  total_layers: number;
  memory: { model_bytes: number; ram_bytes: number; vram_bytes: number; vram_total: number; vram_free: number };
  context_size: number;
  parallel: number;
  threads: number;
}

export interface Prompt {
  tokens: Token[];
  /** text stop triggers of the model's chat template */
  stops: string[];
}

export interface Sampling {
  maxTokens: number;
  temperature: number;
  topP: number | undefined;
  topK: number | undefined;
  seed: number | undefined;
  stop: readonly string[];
  ignoreEos: boolean;
}

export interface GenerateHooks {
  onText(text: string): void;
  onPromptProgress?(done: number, total: number): void;
  onContextShift?(dropped: number): void;
}

/** One sequence of the context: a slot that serves one job at a time. */
export class Slot {
  constructor(readonly index: number, readonly sequence: LlamaContextSequence) {}
}

const DEFAULT_CONTEXT = 4096;
const PROMPT_CHUNK_MS = 100;

export class Engine {
  private embedding: Promise<LlamaEmbeddingContext> | undefined;
  /** the model's chat template, resolved on the first `messages` job */
  private chatWrapper: ReturnType<typeof resolveChatWrapper> | undefined;
  private embedLock: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    readonly info: EngineInfo,
    readonly slots: Slot[],
  ) {}

  static async load(opts: EngineOptions, report: LoadReporter, signal: AbortSignal): Promise<Engine> {
    const file = await stat(opts.modelPath).catch(() => undefined);
    if (!file?.isFile()) throw new RbeeError("MODEL_NOT_FOUND", `No model file at ${opts.modelPath}.`);
    const gpuIndex = /^gpu:(\d+)$/.exec(opts.device)?.[1];
    // The device index must be chosen before the GPU runtime initialises, so it goes through the environment.
    if (gpuIndex !== undefined) process.env["CUDA_VISIBLE_DEVICES"] = process.env["GGML_VK_VISIBLE_DEVICES"] = gpuIndex;
    const llama = await getLlama({
      gpu: opts.device === "cpu" ? false : "auto",
      build: "never",
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => report.log(level === LlamaLogLevel.error || level === LlamaLogLevel.fatal ? "error" : "warn", message.trim()),
      ...(opts.threads !== undefined ? { maxThreads: opts.threads } : {}),
    });
    try {
      return await Engine.loadWith(llama, opts, report, signal);
    } catch (err) {
      await llama.dispose().catch(() => {});
      throw err;
    }
  }

  private static async loadWith(llama: Llama, opts: EngineOptions, report: LoadReporter, signal: AbortSignal): Promise<Engine> {
    const gpu = llama.gpu;
    if (opts.device === "cpu") report.narrate("select_device", "Running on the CPU (--device cpu); no GPU probing.");
    else if (gpu === false) report.narrate("select_device", `No usable GPU backend (CUDA, Vulkan or Metal) on this machine; falling back to the CPU.`, "warn");
    else {
      const names = await llama.getGpuDeviceNames().catch(() => []);
      report.narrate("select_device", `Using ${GPU_NAMES[gpu]}${names.length > 0 ? ` (${names.join(", ")})` : ""}.`);
    }
    const insights = await GgufInsights.from(await readGgufFileInfo(opts.modelPath, { signal }), llama).catch((e: Error) => {
      throw new RbeeError("INTERNAL", `Cannot read ${opts.modelPath} as GGUF: ${e.message}`);
    });
    const total = insights.totalLayers;
    let gpuLayers: GpuLayers = opts.gpuLayers;
    if (gpu === false && gpuLayers !== 0 && gpuLayers !== "auto") {
      report.narrate("gpu_layers", `--gpu-layers ${gpuLayers} asks for GPU offload but there is no GPU; loading 0 layers on the GPU.`, "warn");
    }
    if (gpu === false) gpuLayers = 0;
    const contextSize = opts.contextSize ?? Math.min(insights.trainContextSize ?? DEFAULT_CONTEXT, DEFAULT_CONTEXT);
    const tooBig = (layers: GpuLayers) => async (e: unknown): Promise<never> => {
      if (!(e instanceof InsufficientMemoryError)) throw e;
      throw new RbeeError("INSUFFICIENT_MEMORY", await memoryMessage(llama, insights, layers, contextSize, opts.parallel, e.message));
    };
    report.progress(0, total);
    let reported = 0;
    const model = await llama.loadModel({
      modelPath: opts.modelPath,
      gpuLayers: gpuLayers === "auto" ? { fitContext: { contextSize: contextSize * opts.parallel } } : gpuLayers,
      loadSignal: signal,
      onLoadProgress: (p) => {
        const done = Math.min(total, Math.floor(p * total));
        if (done > reported) report.progress((reported = done), total);
      },
    }).catch(tooBig(gpuLayers));
    try {
      const choice = chooseThreads(opts.threads, {
        mathCores: llama.cpuMathCores, availableCores: availableParallelism(), modelBytes: model.size, gpuLayers: model.gpuLayers, totalLayers: total,
      });
      llama.maxThreads = choice.threads;
      const context = await model.createContext({ contextSize, sequences: opts.parallel, threads: choice.threads }).catch(tooBig(model.gpuLayers));
      if (reported < total) report.progress(total, total);
      const vram = await llama.getVramState();
      const info: EngineInfo = {
        gpu,
        gpu_layers: model.gpuLayers,
        total_layers: total,
        memory: {
          model_bytes: model.size,
          ram_bytes: model.memoryUsage.ram + context.memoryUsage.ram,
          vram_bytes: model.memoryUsage.vram + context.memoryUsage.vram,
          vram_total: vram.total,
          vram_free: vram.free,
        },
        context_size: context.contextSize,
        parallel: opts.parallel,
        threads: choice.threads,
      };
      const where = gpu === false ? "the CPU" : GPU_NAMES[gpu];
      report.narrate("model_loaded",
        `Loaded on ${where}: ${info.gpu_layers} of ${total} layers on the GPU, ${formatBytes(info.memory.vram_bytes)} VRAM and ` +
        `${formatBytes(info.memory.ram_bytes)} RAM; ${opts.parallel} x ${info.context_size} tokens of context, ${choice.threads} CPU thread(s) (${choice.why}).`);
      const slots = Array.from({ length: opts.parallel }, (_, i) => new Slot(i, context.getSequence()));
      return new Engine(llama, model, context, info, slots);
    } catch (err) {
      await model.dispose().catch(() => {});
      throw err;
    }
  }

  /** Renders a prompt or chat messages to tokens; a prompt that alone does not fit the context is CONTEXT_OVERFLOW. */
  prepare(req: { prompt?: string | undefined; messages?: readonly ChatMessage[] | undefined }): Prompt {
    let tokens: Token[];
    let stops: string[] = [];
    // No token stands for more text than its own, so a text this long cannot fit: refused without tokenizing it.
    // Tokenizing runs on the event loop, and a prompt near the 1 MiB body limit would hold the worker's /health
    // silent for about a second (longer on a loaded machine), where the hive allows 2 s.
    const bytes = req.messages !== undefined ? req.messages.reduce((n, m) => n + Buffer.byteLength(m.content), 0) : Buffer.byteLength(req.prompt ?? "");
    const least = Math.ceil(bytes / this.longestToken);
    if (least >= this.context.contextSize) {
      throw new RbeeError("CONTEXT_OVERFLOW", `The prompt is at least ${least} tokens (${bytes} bytes) but this worker's context holds ${this.context.contextSize} tokens per sequence; shorten it or spawn a worker with a larger context_size.`);
    }
    if (req.messages !== undefined) {
      this.chatWrapper ??= resolveChatWrapper(this.model);
      const wrapper = this.chatWrapper;
      const state = wrapper.generateContextState({
        chatHistory: [
          ...req.messages.map((m) => (m.role === "assistant" ? { type: "model" as const, response: [m.content] } : { type: m.role, text: m.content })),
          { type: "model", response: [] },
        ],
      });
      tokens = state.contextText.tokenize(this.model.tokenizer);
      stops = state.stopGenerationTriggers.flatMap((t) => (t.values.every((v) => typeof v === "string") && t.values.length > 0 ? [t.values.join("")] : []));
    } else {
      tokens = this.model.tokenize(req.prompt ?? "", true);
      const bos = this.model.tokens.bos;
      if (bos !== null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos) tokens.unshift(bos);
    }
    if (tokens.length >= this.context.contextSize) {
      throw new RbeeError("CONTEXT_OVERFLOW", `The prompt is ${tokens.length} tokens but this worker's context holds ${this.context.contextSize} tokens per sequence; shorten it or spawn a worker with a larger context_size.`);
    }
    return { tokens, stops };
  }

  /**
   * Generates on one slot until EOS, a stop string or max_tokens. Cancel is checked between decodes
   * (throws `signal.reason`). When the context fills, the oldest generated tokens are dropped and the prompt kept.
   */
  async generate(slot: Slot, prompt: Prompt, s: Sampling, hooks: GenerateHooks, signal: AbortSignal): Promise<{ finishReason: FinishReason; completionTokens: number }> {
    const seq = slot.sequence;
    const model = this.model;
    const tokens = prompt.tokens;
    const promptLength = tokens.length;
    // keep whatever prefix the slot already holds; the last prompt token is decoded again for its logits
    await seq.adaptStateToTokens(tokens.slice(0, -1), false);
    let input = tokens.slice(seq.nextTokenIndex);
    // a long prompt goes in chunks of ~100 ms so a cancel lands between them
    let chunk = Math.min(64, this.context.batchSize);
    while (input.length > chunk) {
      if (signal.aborted) throw signal.reason;
      const began = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(input.slice(0, chunk));
      input = input.slice(chunk);
      hooks.onPromptProgress?.(promptLength - input.length, promptLength);
      const perToken = (performance.now() - began) / chunk;
      chunk = Math.max(16, Math.min(this.context.batchSize, Math.round(PROMPT_CHUNK_MS / Math.max(perToken, 1e-3))));
    }
    if (signal.aborted) throw signal.reason;
    const matcher = new StopMatcher([...s.stop, ...prompt.stops]);
    // without stop strings every generated token is one `token` event, even one that adds no text
    const eventPerToken = s.stop.length + prompt.stops.length === 0;
    const recent = tokens.slice(-8);
    let pending: Token[] = [];
    let generated = 0;
    let finishReason: FinishReason = "length";
    const contextShift = {
      size: (q: LlamaContextSequence) => Math.max(1, Math.floor((q.contextSize - promptLength) / 2)),
      strategy: ({ sequence, size }: { sequence: LlamaContextSequence; size: number }) => {
        const start = Math.min(promptLength, sequence.nextTokenIndex);
        const end = Math.min(start + size, sequence.nextTokenIndex);
        hooks.onContextShift?.(end - start);
        return [{ start, end }];
      },
    };
    const iterator = seq.evaluate(input, {
      temperature: s.temperature,
      ...(s.topK !== undefined ? { topK: s.topK } : {}),
      ...(s.topP !== undefined ? { topP: s.topP } : {}),
      seed: s.seed ?? randomInt(2 ** 32),
      ...(s.ignoreEos ? { tokenBias: this.noEog() } : {}),
      yieldEogToken: true,
      contextShift,
    });
    for await (const token of iterator) {
      if (signal.aborted) throw signal.reason;
      // End of sequence ends the text and is no part of it: not counted in completion_tokens, no event. With
      // ignore_eos every end-of-generation token is banned, so each counted token has its event.
      if (model.isEogToken(token) && !s.ignoreEos) {
        finishReason = "stop";
        break;
      }
      generated++;
      if (model.isEogToken(token)) {
        if (eventPerToken) hooks.onText("");
      } else {
        pending.push(token);
        const text = model.detokenize(pending, false, recent);
        // a multi-byte character split over tokens waits for its last byte (up to 4 tokens); its event meanwhile is empty
        if (text.endsWith("\uFFFD") && pending.length < 4) {
          if (eventPerToken) hooks.onText("");
        } else {
          recent.push(...pending);
          recent.splice(0, Math.max(0, recent.length - 8));
          pending = [];
          const { emit, stopped } = matcher.push(text);
          if (emit !== "" || eventPerToken) hooks.onText(emit);
          if (stopped) {
            finishReason = "stop";
            break;
          }
        }
      }
      if (generated >= s.maxTokens) break;
    }
    // text held back (a partial character, the start of a stop string that never came) is real output
    if (pending.length > 0) {
      const { emit } = matcher.push(model.detokenize(pending, false, recent));
      if (emit !== "") hooks.onText(emit);
    }
    const held = matcher.flush();
    if (held !== "") hooks.onText(held);
    return { finishReason, completionTokens: generated };
  }

  /** One vector per input, in order, on an embedding context made once, on first use. */
  async embed(inputs: readonly string[], signal: AbortSignal): Promise<{ embeddings: number[][]; promptTokens: number }> {
    // made once; a failed attempt is forgotten so the next embed job tries again
    this.embedding ??= this.model.createEmbeddingContext({
      contextSize: Math.min(this.context.contextSize, this.model.trainContextSize),
      threads: this.info.threads,
    }).catch((err: unknown) => {
      this.embedding = undefined;
      throw err;
    });
    const run = this.embedLock.then(async () => {
      const ctx = await this.embedding!;
      const embeddings: number[][] = [];
      let promptTokens = 0;
      for (const [i, text] of inputs.entries()) {
        if (signal.aborted) throw signal.reason;
        const length = ctx.calculateInputLength(text);
        if (length > this.context.contextSize) {
          throw new RbeeError("CONTEXT_OVERFLOW", `input[${i}] is ${length} tokens but the embedding context holds ${this.context.contextSize}.`);
        }
        promptTokens += length;
        embeddings.push([...(await ctx.getEmbeddingFor(text)).vector]);
      }
      return { embeddings, promptTokens };
    });
    this.embedLock = run.catch(() => {});
    return run;
  }

  private eogBias: TokenBias | undefined;
  /** ignore_eos: every end-of-generation token of the vocabulary banned (EOS, EOT and any other, such as `<|im_end|>`). */
  private noEog(): TokenBias {
    if (this.eogBias) return this.eogBias;
    const bias = new TokenBias(this.model.tokenizer);
    for (const t of [this.model.tokens.eos, this.model.tokens.eot]) if (t !== null) bias.set(t, "never");
    for (let t = 0; t < this.vocabularySize; t++) if (this.model.isEogToken(t as Token)) bias.set(t as Token, "never");
    return (this.eogBias = bias);
  }

  private get vocabulary(): readonly unknown[] {
    const tokens = (this.model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: unknown } } }).tokenizer?.ggml?.tokens;
    return Array.isArray(tokens) ? tokens : [];
  }

  private get vocabularySize(): number {
    return this.vocabulary.length;
  }

  private longestTokenBytes: number | undefined;
  /** The most bytes of text one token stands for (its own text's length; unknown: no bound). */
  private get longestToken(): number {
    if (this.longestTokenBytes === undefined) {
      let longest = 0;
      for (const t of this.vocabulary) if (typeof t === "string") longest = Math.max(longest, Buffer.byteLength(t));
      this.longestTokenBytes = longest > 0 ? longest : Number.POSITIVE_INFINITY;
    }
    return this.longestTokenBytes;
  }

  async dispose(): Promise<void> {
    await this.llama.dispose();
  }
}

/** INSUFFICIENT_MEMORY with the numbers: what the request needs against what the device has free. */
async function memoryMessage(llama: Llama, insights: GgufInsights, gpuLayers: GpuLayers, contextSize: number, parallel: number, why: string): Promise<string> {
  const total = insights.totalLayers;
  const layers = llama.gpu === false ? 0 : typeof gpuLayers === "number" ? Math.min(gpuLayers, total) : total;
  const model = insights.estimateModelResourceRequirements({ gpuLayers: layers });
  const ctx = insights.estimateContextResourceRequirements({ contextSize, modelGpuLayers: layers, sequences: parallel });
  const shape = `${parallel} x ${contextSize} tokens of context`;
  if (llama.gpu === false) {
    const ram = await llama.getRamState();
    return `${why}: the model and ${shape} need about ${formatBytes(model.cpuRam + ctx.cpuRam)} of RAM (model ${formatBytes(model.cpuRam)}, ` +
      `context ${formatBytes(ctx.cpuRam)}) but ${formatBytes(ram.free)} of ${formatBytes(ram.total)} is free; use a smaller context_size or fewer parallel slots.`;
  }
  const vram = await llama.getVramState().catch(() => ({ total: 0, free: 0 }));
  return `${why}: ${layers} of ${total} layers with ${shape} need about ${formatBytes(model.gpuVram + ctx.gpuVram)} of VRAM ` +
    `(model ${formatBytes(model.gpuVram)}, context ${formatBytes(ctx.gpuVram)}) and ${formatBytes(model.cpuRam + ctx.cpuRam)} of RAM, ` +
    `but ${GPU_NAMES[llama.gpu]} has ${formatBytes(vram.free)} of ${formatBytes(vram.total)} VRAM free; use --gpu-layers auto, fewer layers or a smaller context.`;
}
