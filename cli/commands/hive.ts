import { str } from "../args.js";
import type { CommandContext } from "../context.js";
import { usageError } from "../exit-codes.js";
import { runJob } from "../run-job.js";

/** The hive a command names: the HIVE argument or --hive (the same one when both are given). */
export function hiveOf(ctx: CommandContext, positional = false): string | undefined {
  const flag = str(ctx.args, "hive");
  const arg = positional ? ctx.args.input[0] : undefined;
  if (flag !== undefined && arg !== undefined && flag !== arg) throw usageError(`two hives given: "${arg}" and --hive ${flag}.`);
  return arg ?? flag;
}

const withHive = (op: string, hive: string | undefined) => ({ operation: op, ...(hive !== undefined ? { hive_id: hive } : {}) });

export async function run(ctx: CommandContext): Promise<number> {
  const sub = ctx.args.spec.path[1];
  if (sub === "list") return runJob(ctx, { operation: "hive_list" });
  return runJob(ctx, withHive(`hive_${sub}`, hiveOf(ctx, true)));
}
