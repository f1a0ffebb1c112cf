import { JOB_ID_PATTERN, type EndData } from "../../shared/protocol.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT, usageError } from "../exit-codes.js";
import { connectQueen, isUnreachable } from "../queen.js";
import { describeError } from "../run-job.js";

/** How long `rbee cancel` waits to see the job's end. */
const WAIT_MS = 5000;

export async function run(ctx: CommandContext): Promise<number> {
  const jobId = ctx.args.input[0] as string;
  if (!JOB_ID_PATTERN.test(jobId)) throw usageError(`"${jobId}" is not a job id (job-...).`, "See rbee jobs.");
  const client = await connectQueen(ctx, false);
  const fail = (err: unknown) => new CliError(isUnreachable(err) ? EXIT.unreachable : EXIT.failed, describeError(err));
  try {
    await client.cancel(jobId);
  } catch (err) {
    throw fail(err);
  }
  // DELETE answers at once; the end event says whether it was cancelled or had already ended.
  let end: EndData | undefined;
  try {
    for await (const e of client.stream(jobId, { signal: AbortSignal.timeout(WAIT_MS) })) if (e.event === "end") end = e.data;
  } catch (err) {
    if (!(err instanceof Error && err.name === "TimeoutError")) throw fail(err);
  }
  const status = end?.status ?? "cancelling";
  if (ctx.mode === "json") ctx.stdout.write(`${JSON.stringify({ job_id: jobId, status })}\n`);
  else if (status === "cancelled") ctx.stdout.write(`${jobId} cancelled.\n`);
  else if (status === "cancelling") ctx.stdout.write(`${jobId} is cancelling (no end within ${WAIT_MS / 1000} s).\n`);
  else ctx.stdout.write(`${jobId} had already ended: ${status}.\n`);
  return EXIT.ok;
}
