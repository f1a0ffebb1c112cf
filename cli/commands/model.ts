import { isAbsolute, resolve } from "node:path";
import { str } from "../args.js";
import type { CommandContext } from "../context.js";
import { usageError } from "../exit-codes.js";
import { runJob } from "../run-job.js";
import { hiveOf } from "./hive.js";

export async function run(ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const sub = a.spec.path[1] as string;
  const op: { operation: string; [k: string]: unknown } = { operation: `model_${sub}` };
  const hive = hiveOf(ctx);
  if (hive !== undefined) op["hive_id"] = hive;
  const arg = a.input[0] as string;
  if (sub === "get" || sub === "delete" || sub === "download") op["model"] = arg;
  if (sub === "import") {
    // The hive reads the path on its own machine: only for this machine's hive can a relative path be made absolute.
    if (!isAbsolute(arg) && hive !== undefined && hive !== "localhost") throw usageError(`PATH must be absolute for hive ${hive} (it is a path on that machine).`);
    op["path"] = isAbsolute(arg) ? arg : resolve(arg);
  }
  const name = str(a, "name");
  if (name !== undefined) op["name"] = name;
  return runJob(ctx, op);
}
