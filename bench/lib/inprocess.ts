/**
 * The in-process baseline: node-llama-cpp in the benchmark's own process, set up and driven the way the worker's
 * engine (daemons/worker/engine.ts) does it: CPU, the worker's thread count and context size, one sequence, the
 * prompt tokenized the same way, the slot's cached prefix kept, greedy sampling with EOS banned (ignore_eos),
 * every token detokenized as it comes. What the worker adds on top is HTTP, SSE and its job machinery.
 */
import { getLlama, LlamaLogLevel, TokenBias, type Llama, type LlamaContext, type LlamaContextSequence, type LlamaModel, type Token } from "node-llama-cpp";
import type { InferSample } from "./infer.js";
import { decodeRate } from "./stats.js";

export class InProcess {
  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly sequences: LlamaContextSequence[],
    private readonly noEog: TokenBias,
  ) {}

  /** `sequences` > 1: one context with that many sequences, like a worker's `--parallel` slots. */
  static async load(modelPath: string, threads: number, contextSize: number, sequences = 1): Promise<InProcess> {
    const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
    const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
    llama.maxThreads = threads;
    const context = await model.createContext({ contextSize, sequences, threads });
    const bias = new TokenBias(model.tokenizer);
    for (const t of [model.tokens.eos, model.tokens.eot]) if (t !== null) bias.set(t, "never");
    return new InProcess(llama, model, context, Array.from({ length: sequences }, () => context.getSequence()), bias);
  }

  get threads(): number {
    return this.context.currentThreads;
  }

  private tokenize(prompt: string): Token[] {
    const tokens = this.model.tokenize(prompt, true);
    const bos = this.model.tokens.bos;
    if (bos !== null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos) tokens.unshift(bos);
    return tokens;
  }

  /** One generation of `maxTokens` tokens; TTFT from the call (tokenizing included) to the first token. */
  async infer(prompt: string, maxTokens: number, seed = 42, sequence = 0): Promise<InferSample> {
    const began = performance.now();
    const tokens = this.tokenize(prompt);
    const seq = this.sequences[sequence]!;
    await seq.adaptStateToTokens(tokens.slice(0, -1), false);
    const input = tokens.slice(seq.nextTokenIndex);
    const recent = tokens.slice(-8);
    const times: number[] = [];
    let generated = 0;
    for await (const token of seq.evaluate(input, { temperature: 0, seed, tokenBias: this.noEog, yieldEogToken: true })) {
      generated++;
      if (!this.model.isEogToken(token)) {
        this.model.detokenize([token], false, recent);
        recent.push(token);
        recent.splice(0, Math.max(0, recent.length - 8));
        times.push(performance.now());
      }
      if (generated >= maxTokens) break;
    }
    return { ttftMs: (times[0] ?? Number.NaN) - began, tokensPerS: decodeRate(times), tokens: times.length, totalMs: performance.now() - began };
  }

  /** `n` generations at once, one per sequence; aggregate tokens/s over the wall time. */
  async inferMany(n: number, prompt: string, maxTokens: number): Promise<{ tps: number; ttfts: number[] }> {
    const began = performance.now();
    const rs = await Promise.all(Array.from({ length: n }, (_, i) => this.infer(prompt, maxTokens, i, i % this.sequences.length)));
    const tokens = rs.reduce((a, r) => a + r.tokens, 0);
    return { tps: (tokens * 1000) / (performance.now() - began), ttfts: rs.map((r) => r.ttftMs) };
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}
