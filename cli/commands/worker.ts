import { intFlag, str } from "../args.js";
import type { CommandContext } from "../context.js";
import { runJob } from "../run-job.js";
import { hiveOf } from "./hive.js";

/** --gpu-layers: "auto", "max", or a number of layers. */
function gpuLayers(v: string | undefined): string | number | undefined {
  if (v === undefined) return undefined;
  return /^\d+$/.test(v.trim()) ? Number(v) : v;
}

export async function run(ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const sub = a.spec.path[1];
  const op: { operation: string; [k: string]: unknown } = { operation: `worker_${sub}` };
  const hive = hiveOf(ctx);
  if (hive !== undefined) op["hive_id"] = hive;
  if (sub === "stop") op["worker_id"] = a.input[0];
  if (sub === "spawn") {
    const fields: [string, unknown][] = [
      ["model", str(a, "model")],
      ["device", str(a, "device")],
      ["gpu_layers", gpuLayers(str(a, "gpu-layers"))],
      ["context_size", intFlag(a, "context-size")],
      ["parallel", intFlag(a, "parallel")],
      ["keep_alive", intFlag(a, "keep-alive")],
    ];
    for (const [k, v] of fields) if (v !== undefined) op[k] = v;
  }
  return runJob(ctx, op);
}
