import type { EndData, JobEvent } from "../shared/protocol.js";
import { formatAmount, formatMs, percent } from "./format.js";
import { payloadText } from "./tables.js";
import { EVICT_ACTION } from "./ui/reducer.js";

/** Where a job's events go: JSON lines, plain text, or the Ink TUI. */
export interface EventSink {
  created(jobId: string, operation: string): void;
  event(e: JobEvent): void;
  cancelling(): void;
  /** The stream is over; resolves once everything is written. */
  finish(elapsedMs: number): Promise<void>;
}

/** `{"event":"<type>", ...data}` per line on stdout, and nothing else there. */
export class JsonSink implements EventSink {
  constructor(private readonly stdout: NodeJS.WriteStream) {}
  created(): void {}
  event(e: JobEvent): void {
    this.stdout.write(`${JSON.stringify({ event: e.event, ...e.data })}\n`);
  }
  cancelling(): void {}
  async finish(): Promise<void> {}
}

const PROGRESS_EVERY_MS = 1000;

/** One line summing up an infer job's end: tokens, speed, time to first token. */
export function inferSummary(end: EndData, tokens: number): string {
  const parts = [`${end.usage?.completion_tokens ?? tokens} tokens`];
  if (end.timing) {
    parts.push(`${end.timing.tokens_per_s.toFixed(1)} tokens/s`, `first token ${formatMs(end.timing.ttft_ms)}`, `total ${formatMs(end.timing.total_ms)}`);
  }
  if (end.usage) parts.push(`prompt ${end.usage.prompt_tokens} tokens`);
  if (end.finish_reason) parts.push(`finish ${end.finish_reason}`);
  return parts.join(", ");
}

/**
 * For pipes and scripts: generated text streams to stdout (with a final newline), results are
 * printed readably on stdout, narration and progress go to stderr as plain lines.
 */
export class PlainSink implements EventSink {
  private operation = "";
  private jobId = "";
  private tokens = 0;
  private lastChar = "\n";
  private end: EndData | undefined;
  private readonly progressAt = new Map<string, number>();

  constructor(
    private readonly stdout: NodeJS.WriteStream,
    private readonly stderr: NodeJS.WriteStream,
    private readonly now: () => number = Date.now,
  ) {}

  created(jobId: string, operation: string): void {
    this.jobId = jobId;
    this.operation = operation;
  }

  event(e: JobEvent): void {
    switch (e.event) {
      case "narration": {
        const d = e.data;
        const who = d.node ? `${d.actor} ${d.node}` : d.actor;
        const level = d.level === "warn" ? "warning: " : d.level === "error" ? "error: " : "";
        // An eviction stopped a loaded model someone may have been counting on: say so plainly.
        if (d.action === EVICT_ACTION) this.stderr.write(`[${who}] warning: evicted worker ${d.target ?? "?"} (idle, LRU) to make room: ${d.human}\n`);
        else this.stderr.write(`[${who}] ${level}${d.human}\n`);
        break;
      }
      case "progress": {
        const d = e.data;
        const key = `${e.data.job_id}\u0000${d.action}\u0000${d.target ?? ""}`;
        const finished = d.total !== null && d.done >= d.total;
        const last = this.progressAt.get(key);
        if (!finished && last !== undefined && this.now() - last < PROGRESS_EVERY_MS) break;
        this.progressAt.set(key, this.now());
        const p = percent(d.done, d.total);
        this.stderr.write(`[progress] ${d.action}${d.target ? ` ${d.target}` : ""}: ${formatAmount(d.done, d.total, d.unit)}${p === null ? "" : ` (${Math.floor(p * 100)}%)`}\n`);
        break;
      }
      case "token":
        if (e.data.text.length > 0) {
          this.stdout.write(e.data.text);
          this.lastChar = e.data.text.slice(-1);
        }
        this.tokens++;
        break;
      case "data": {
        // An infer's stdout is its text alone; a worker spawned on the way is told on stderr.
        if (this.operation === "infer") {
          this.stderr.write(`[data] ${e.data.action}: ${JSON.stringify(e.data.payload)}\n`);
          break;
        }
        const text = payloadText(e.data.action, e.data.payload);
        if (text) this.stdout.write(`${text}\n`);
        break;
      }
      case "end":
        if (e.data.job_id === this.jobId || e.data.path.length === 1) this.end = e.data;
        break;
    }
  }

  cancelling(): void {
    this.stderr.write(`rbee: cancelling ${this.jobId}...\n`);
  }

  async finish(): Promise<void> {
    if (this.tokens > 0 && this.lastChar !== "\n") this.stdout.write("\n");
    if (this.operation === "infer" && this.end?.status === "completed") this.stderr.write(`rbee: ${inferSummary(this.end, this.tokens)}\n`);
  }
}

/** Queues events until the real sink exists, so the stream is read (and timed) while Ink is still loading. */
export class DeferredSink implements EventSink {
  private real: EventSink | undefined;
  private queue: ((s: EventSink) => void)[] = [];
  private readonly ready: Promise<EventSink>;

  constructor(sink: Promise<EventSink>) {
    this.ready = sink.then((s) => {
      this.real = s;
      for (const call of this.queue) call(s);
      this.queue = [];
      return s;
    });
    this.ready.catch(() => {});
  }

  private call(f: (s: EventSink) => void): void {
    if (this.real) f(this.real);
    else this.queue.push(f);
  }

  created(jobId: string, operation: string): void {
    this.call((s) => s.created(jobId, operation));
  }
  event(e: JobEvent): void {
    this.call((s) => s.event(e));
  }
  cancelling(): void {
    this.call((s) => s.cancelling());
  }
  async finish(elapsedMs: number): Promise<void> {
    await (await this.ready).finish(elapsedMs);
  }
}
