/** Builders for recorded event streams, as a queen's stream carries them (paths from the root). */
import type { JobEvent } from "../../../shared/protocol.js";

export const Q = "job-queen00001";
export const H = "job-hive000001";
export const L = "job-load000001";
export const W = "job-work000001";
export const H2 = "job-hive000002";

let id = 0;
const base = (path: string[]) => ({ job_id: path[path.length - 1] as string, correlation_id: "corr-test00000001", path });

export const narr = (path: string[], actor: string, node: string | null, human: string, level: "info" | "warn" | "error" = "info"): JobEvent => ({
  id: ++id,
  event: "narration",
  data: { ...base(path), actor, node, action: "step", target: null, human, level, ts: "2025-11-27T10:00:00.000Z" },
});

export const prog = (path: string[], done: number, total: number | null, unit = "layers", action = "load_model", target: string | null = "rbee-tiny"): JobEvent => ({
  id: ++id,
  event: "progress",
  data: { ...base(path), action, target, done, total, unit },
});

export const tok = (path: string[], text: string, index: number): JobEvent => ({ id: ++id, event: "token", data: { ...base(path), text, index } });

export const data = (path: string[], action: string, payload: unknown): JobEvent => ({ id: ++id, event: "data", data: { ...base(path), action, payload } });

export const end = (path: string[], status: "completed" | "failed" | "cancelled", extra: Record<string, unknown> = {}): JobEvent => ({
  id: ++id,
  event: "end",
  data: {
    ...base(path),
    status,
    ...(status === "failed" ? { error: { code: "MODEL_NOT_FOUND", message: "No such model." } } : {}),
    ...(status === "cancelled" ? { error: { code: "CANCELLED", message: "The job was cancelled." } } : {}),
    ...extra,
  } as never,
});

/** A whole infer as the queen streams it: queen -> hive -> (worker load, worker infer). */
export function inferStream(tokens = 3): JobEvent[] {
  return [
    narr([Q], "queen-rbee", null, "Scheduling rbee-tiny."),
    narr([Q, H], "rbee-hive", "localhost", "Spawning worker w-1."),
    prog([Q, H, L], 0, 4),
    prog([Q, H, L], 4, 4),
    narr([Q, H, L], "llm-worker-rbee", "w-1", "Loaded 4/4 layers."),
    narr([Q, H], "rbee-hive", "localhost", "Worker w-1 is ready."),
    narr([Q, H, W], "llm-worker-rbee", "w-1", "Generating."),
    ...Array.from({ length: tokens }, (_, i) => tok([Q, H, W], `t${i} `, i)),
    end([Q], "completed", {
      finish_reason: "length",
      usage: { prompt_tokens: 2, completion_tokens: tokens },
      timing: { ttft_ms: 120, total_ms: 1500, tokens_per_s: 42.5 },
    }),
  ];
}
