import { RbeeError } from "../shared/errors.js";
import { OPERATION_NAMES, parseOperation, type EndData } from "../shared/protocol.js";
import type { CommandContext } from "./context.js";
import { CliError, EXIT, usageError } from "./exit-codes.js";
import { connectQueen, isUnreachable } from "./queen.js";
import { DeferredSink, JsonSink, PlainSink, type EventSink } from "./sinks.js";

/** How long Ctrl-C waits for the job's `cancelled` end after sending DELETE. */
export const CANCEL_WAIT_MS = 2000;

/** Operation fields as the flags and arguments that set them, for usage messages. */
const FIELD_NAMES: Record<string, string> = {
  prompt: "the prompt",
  messages: "--system",
  model: "the model",
  hive_id: "--hive",
  worker_id: "the worker",
  max_tokens: "--max-tokens",
  temperature: "--temperature",
  top_p: "--top-p",
  top_k: "--top-k",
  seed: "--seed",
  stop: "--stop",
  ignore_eos: "--ignore-eos",
  keep_alive: "--keep-alive",
  device: "--device",
  gpu_layers: "--gpu-layers",
  context_size: "--context-size",
  parallel: "--parallel",
  name: "--name",
  path: "PATH",
  input: "TEXT",
};

/** The queen validates too; checking here first keeps a usage error from starting a queen. */
export function validateLocally(op: { operation: string; [field: string]: unknown }): void {
  try {
    parseOperation(op, OPERATION_NAMES);
  } catch (err) {
    if (!(err instanceof RbeeError)) throw err;
    const m = /^([a-z_]+)(\[\d+\])?(\.[a-z_]+)?: (.*)$/s.exec(err.message);
    const field = m ? (FIELD_NAMES[m[1] as string] ?? m[1]) : undefined;
    throw usageError(m && field ? `${field}: ${m[4]}` : err.message);
  }
}

export function describeError(err: unknown): string {
  return err instanceof RbeeError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
}

type TuiModule = typeof import("./ui/tui.js");

function makeSink(ctx: CommandContext, tui: Promise<TuiModule> | undefined): EventSink {
  if (ctx.mode === "json") return new JsonSink(ctx.stdout);
  if (ctx.mode === "plain" || !tui) return new PlainSink(ctx.stdout, ctx.stderr);
  return new DeferredSink(tui.then(({ TuiSink }) => new TuiSink(ctx.stdout, ctx.stderr)));
}

const exitFor = (end: EndData): number => (end.status === "completed" ? EXIT.ok : end.status === "cancelled" ? EXIT.cancelled : EXIT.failed);

/**
 * Runs one operation as a queen job: create, stream every event into the output, Ctrl-C -> DELETE
 * then wait briefly for the `cancelled` end. Returns the exit status the job's end maps to.
 */
export async function runJob(ctx: CommandContext, op: { operation: string; [field: string]: unknown }): Promise<number> {
  validateLocally(op);
  // Ink and React load only for the TUI, and while the queen is being reached, not after.
  const tui = ctx.mode === "tui" ? import("./ui/tui.js") : undefined;
  tui?.catch(() => {});
  const client = await connectQueen(ctx);
  const started = Date.now();
  let jobId: string | undefined;
  let sink: EventSink | undefined;
  let cancelRequested = false;
  const reader = new AbortController();
  let giveUp: NodeJS.Timeout | undefined;
  const cancel = (id: string) => {
    sink?.cancelling();
    client.cancel(id).catch(() => {});
    giveUp = setTimeout(() => reader.abort(), CANCEL_WAIT_MS);
  };
  // From here a Ctrl-C cancels the job, even one whose POST is still on its way.
  const removeInterrupt = ctx.onInterrupt(() => {
    cancelRequested = true;
    if (jobId) cancel(jobId);
  });
  try {
    try {
      jobId = (await client.create(op)).job_id;
    } catch (err) {
      if (isUnreachable(err)) throw new CliError(EXIT.unreachable, `Lost queen-rbee at ${client.baseUrl}: ${(err as Error).message}`);
      if (err instanceof RbeeError && err.status === 400) throw usageError(`${err.code}: ${err.message}`);
      throw new CliError(EXIT.failed, describeError(err));
    }
    sink = makeSink(ctx, tui);
    sink.created(jobId, op.operation);
    if (cancelRequested) cancel(jobId);
    return await follow(ctx, client, jobId, sink, reader.signal, started, () => cancelRequested);
  } finally {
    if (giveUp) clearTimeout(giveUp);
    removeInterrupt();
  }
}

/** Streams the job into the sink until its end (or until a cancel gives up waiting); returns the exit status. */
async function follow(
  ctx: CommandContext,
  client: Awaited<ReturnType<typeof connectQueen>>,
  jobId: string,
  sink: EventSink,
  signal: AbortSignal,
  started: number,
  cancelRequested: () => boolean,
): Promise<number> {
  let end: EndData | undefined;
  let failure: CliError | undefined;
  let endedAt = 0;
  try {
    for await (const e of client.stream(jobId, { signal })) {
      sink.event(e);
      if (e.event === "end" && e.data.job_id === jobId) {
        end = e.data;
        endedAt = Date.now();
      }
    }
  } catch (err) {
    if (!signal.aborted) {
      failure = isUnreachable(err)
        ? new CliError(EXIT.unreachable, `Lost queen-rbee at ${client.baseUrl} while following ${jobId}: ${(err as Error).message}`)
        : new CliError(EXIT.failed, describeError(err));
    }
  }
  await sink.finish((endedAt || Date.now()) - started);
  if (failure) throw failure;
  if (!end) {
    if (cancelRequested()) {
      ctx.stderr.write(`rbee: ${jobId} did not confirm the cancel within ${CANCEL_WAIT_MS / 1000} s; exiting.\n`);
      return EXIT.cancelled;
    }
    throw new CliError(EXIT.failed, `The stream of ${jobId} closed without an end event.`);
  }
  // On a terminal the TUI's summary line already said it; stderr gets it whenever it may be read apart.
  const told = ctx.mode === "tui" && ctx.stderr.isTTY;
  if (end.status === "failed" && !told) ctx.stderr.write(`rbee: ${end.error?.code ?? "INTERNAL"}: ${end.error?.message ?? "The job failed."}\n`);
  if (end.status === "cancelled" && !told) ctx.stderr.write(`rbee: ${jobId} was cancelled.\n`);
  return exitFor(end);
}
