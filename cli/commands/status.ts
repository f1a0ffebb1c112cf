import type { CommandContext } from "../context.js";
import { runJob } from "../run-job.js";

export const run = (ctx: CommandContext): Promise<number> => runJob(ctx, { operation: "status" });
