import { RbeeError } from "../../shared/errors.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit-codes.js";
import { connectQueen, isUnreachable } from "../queen.js";
import { describeError } from "../run-job.js";
import { jobTable, tableText } from "../tables.js";

export async function run(ctx: CommandContext): Promise<number> {
  const client = await connectQueen(ctx, false);
  let jobs;
  try {
    jobs = await client.list();
  } catch (err) {
    if (isUnreachable(err)) throw new CliError(EXIT.unreachable, describeError(err));
    throw new CliError(EXIT.failed, err instanceof RbeeError ? describeError(err) : String(err));
  }
  if (ctx.mode === "json") ctx.stdout.write(`${JSON.stringify({ jobs })}\n`);
  else ctx.stdout.write(`${jobs.length ? tableText(jobTable(jobs)) : "No jobs."}\n`);
  return EXIT.ok;
}
