/**
 * A fake queen for the keeper's tests: the real shared JobServer (real HTTP, SSE, cancel) with
 * scripted handlers, emitting the nested paths a real queen -> hive -> worker cascade emits.
 */
import type { Job } from "../../../shared/job.js";
import { JobServer, type OperationHandlers } from "../../../shared/job-server.js";
import { RbeeError, invalid } from "../../../shared/errors.js";
import { Logger } from "../../../shared/log.js";
import { OPERATION_NAMES, type JobEvent, type OperationName } from "../../../shared/protocol.js";

export interface FakeQueen {
  server: JobServer;
  url: string;
  /** Job ids that got a DELETE request. */
  deletes: string[];
  /** Operations as the keeper sent them, in order. */
  received: Record<string, unknown>[];
  close(): Promise<void>;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });

let seq = 0;
/** Builds a downstream event as a hive would send it, for `job.relay` to put the queen's id in front. */
function downstream(path: string[], event: JobEvent["event"], payload: Record<string, unknown>, correlationId: string): JobEvent {
  return {
    id: ++seq,
    event,
    data: { job_id: path[path.length - 1], correlation_id: correlationId, path, ...payload },
  } as unknown as JobEvent;
}

const narration = (actor: string, node: string | null, action: string, human: string) => ({
  actor, node, action, target: null, human, level: "info", ts: new Date().toISOString(),
});

export const FAKE_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"];

async function fakeInfer(op: Record<string, unknown>, job: Job) {
  const corr = job.correlationId;
  const hiveJob = `job-hive${job.id.slice(4, 12)}`;
  const loadJob = `job-load${job.id.slice(4, 12)}`;
  const workerJob = `job-work${job.id.slice(4, 12)}`;
  const prompt = String(op["prompt"] ?? (op["messages"] as { content: string }[] | undefined)?.at(-1)?.content ?? "");
  job.markRunning();
  job.narrate("schedule", `Scheduling ${String(op["model"] ?? "rbee-tiny")} on hive localhost.`);
  job.relay(downstream([hiveJob], "narration", narration("rbee-hive", "localhost", "spawn_worker", "Spawning worker w-test-1."), corr));
  for (let layer = 0; layer <= 4; layer++) {
    job.relay(downstream([hiveJob, loadJob], "progress", { action: "load_model", target: "rbee-tiny", done: layer, total: 4, unit: "layers" }, corr));
  }
  job.relay(downstream([hiveJob, loadJob], "narration", narration("llm-worker-rbee", "w-test-1", "loaded", "Loaded 4/4 layers on cpu."), corr));
  job.relay(downstream([hiveJob], "narration", narration("rbee-hive", "localhost", "worker_ready", "Worker w-test-1 is ready."), corr));
  if (prompt.includes("fail")) throw new RbeeError("MODEL_NOT_FOUND", "No model nope-model in the catalog of hive localhost.");
  job.relay(downstream([hiveJob, workerJob], "narration", narration("llm-worker-rbee", "w-test-1", "infer", "Generating."), corr));
  // "slow": a token every 50 ms until cancelled; "steady": a token every 2 ms up to max_tokens.
  const slow = prompt.includes("slow");
  const pace = slow ? 50 : prompt.includes("steady") ? 2 : 0;
  const max = slow ? 10_000 : Number(op["max_tokens"] ?? 12);
  for (let i = 0; i < max; i++) {
    if (pace) await sleep(pace, job.signal);
    job.relay(downstream([hiveJob, workerJob], "token", { text: `${FAKE_WORDS[i % FAKE_WORDS.length]} `, index: i }, corr));
  }
  return { finish_reason: "length" as const, usage: { prompt_tokens: prompt.split(/\s+/).length, completion_tokens: max } };
}

export const FAKE_STATUS = {
  hives: [
    {
      hive_id: "localhost",
      url: "http://127.0.0.1:9000",
      state: "online",
      last_seen: new Date().toISOString(),
      devices: [{ id: "cpu", kind: "cpu", name: "Fake CPU", memory_total: 16 * 1024 ** 3, memory_free: 8 * 1024 ** 3 }],
      workers: [
        { worker_id: "w-test-1", hive_id: "localhost", url: "http://127.0.0.1:9001", pid: 42, model: "rbee-tiny", device: "cpu", state: "ready", gpu_layers: 0, total_layers: 4, parallel: 2, busy_slots: 1, keep_alive: 300, last_used: new Date().toISOString() },
      ],
      models: [{ id: "rbee-tiny", size_bytes: 3 * 1024 ** 2, architecture: "llama", quantization: "F32", parameters: 1_200_000, context_length: 512, layers: 4 }],
    },
  ],
};

export async function startFakeQueen(port = 0, logFile = "/dev/null", token?: string): Promise<FakeQueen> {
  const deletes: string[] = [];
  const received: Record<string, unknown>[] = [];
  const generic = async (op: { operation: string }, job: Job) => {
    received.push(op);
    job.markRunning();
    job.narrate(op.operation, `Running ${op.operation}.`);
    if (op.operation === "status") job.data("status", FAKE_STATUS);
    else if (op.operation === "embed") job.data("embed", { embeddings: ((op as unknown as { input: string[] }).input).map((_, i) => [i, 0.5, -0.25]), usage: { prompt_tokens: 2 } });
    else if (op.operation === "model_download") {
      for (let done = 0; done <= 4; done++) job.progress("download", "tiny.gguf", done * 1024 * 1024, 4 * 1024 * 1024, "bytes");
      job.data("model_download", { id: "tiny", size_bytes: 4 * 1024 * 1024 });
    } else job.data(op.operation, { ok: true, ...op });
  };
  const operations = Object.fromEntries(
    OPERATION_NAMES.map((name) => [
      name,
      name === "infer"
        ? (op: Record<string, unknown>, job: Job) => {
            received.push(op);
            return fakeInfer(op, job);
          }
        : generic,
    ]),
  ) as unknown as OperationHandlers<OperationName>;
  const server = new JobServer({
    service: "queen-rbee",
    version: "0.0.0-fake",
    operations,
    validate: (op) => {
      if ("model" in op && op.model === "refused-by-queen") throw invalid("model", "this fake queen refuses it.");
    },
    info: () => ({ fake: true }),
    logger: new Logger("queen-rbee", null, logFile),
    token,
    routes: (router) => {
      router.delete("/v1/jobs/:id", async (ctx, next) => {
        deletes.push(ctx.params["id"] ?? "");
        await next();
      });
    },
  });
  const url = await server.listen(port, "127.0.0.1");
  return {
    server,
    url,
    deletes,
    received,
    close: async () => {
      await server.close();
      await server.logger.close();
    },
  };
}
