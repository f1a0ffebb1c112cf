/** In-process job servers for the tests of the job machinery, and handlers that wait for the test. */
import type { Job } from "../../shared/job.js";
import { JobServer, type JobServerOptions, type OperationHandlers } from "../../shared/job-server.js";
import { Logger } from "../../shared/log.js";
import type { OperationName } from "../../shared/protocol.js";
import type { Teardown } from "./cleanup.js";

/** A real JobServer on port 0 with `operations` (a quiet llm-worker-rbee 1.2.3 unless `extra` says otherwise); closed at teardown. */
export async function startJobServer<N extends OperationName>(
  t: Teardown,
  operations: OperationHandlers<N>,
  extra: Partial<JobServerOptions<N>> = {},
): Promise<{ server: JobServer<N>; url: string }> {
  const service = extra.service ?? "llm-worker-rbee";
  const server = new JobServer<N>({ service, version: "1.2.3", operations, info: () => ({ ok: true }), logger: new Logger(service, null, "/dev/null"), ...extra });
  const url = await server.listen(0);
  t.teardown(() => server.close(200));
  return { server, url };
}

/** A promise the test resolves when it chooses: a handler awaits `wait` to hold its job at a known point. */
export function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => {};
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** Rejects with the job's cancel reason once it is cancelled: a handler that unwinds promptly. */
export const untilCancelled = (job: Job): Promise<never> =>
  new Promise((_, reject) => {
    if (job.signal.aborted) reject(job.signal.reason);
    job.signal.addEventListener("abort", () => reject(job.signal.reason), { once: true });
  });
