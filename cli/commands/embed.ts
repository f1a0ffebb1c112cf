import { intFlag, str } from "../args.js";
import type { CommandContext } from "../context.js";
import { runJob } from "../run-job.js";

export async function run(ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const op: { operation: string; [k: string]: unknown } = { operation: "embed", input: a.input };
  const fields: [string, unknown][] = [
    ["model", str(a, "model")],
    ["hive_id", str(a, "hive")],
    ["worker_id", str(a, "worker")],
    ["keep_alive", intFlag(a, "keep-alive")],
  ];
  for (const [k, v] of fields) if (v !== undefined) op[k] = v;
  return runJob(ctx, op);
}
