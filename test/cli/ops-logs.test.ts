/** `rbee logs` filters: --job takes the whole subtree, whatever order the lines of its jobs come in. */
import test from "ava";
import { logFilter, type LogRecord } from "../../cli/commands/logs.js";

const rec = (service: string, job_id: string, parent_job_id?: string, correlation_id = "corr-a"): LogRecord => ({
  ts: "2025-01-01T00:00:00.000Z", service, job_id, correlation_id, ...(parent_job_id ? { parent_job_id } : {}),
});
const jobs = (rs: LogRecord[]) => rs.map((r) => r.job_id);

test("--job: the queen job, the hive job it started and the worker job that one started", (t) => {
  const keep = logFilter({ job: "job-q" });
  const batch = [
    rec("llm-worker-rbee", "job-w", "job-h"), // the worker narrated before the hive job said anything
    rec("queen-rbee", "job-q"),
    rec("rbee-hive", "job-h", "job-q"),
    rec("rbee-hive", "job-other", "job-x"),
    rec("llm-worker-rbee", "job-w"), // a job_end line carries no parent
  ];
  t.deepEqual(jobs(keep(batch)), ["job-w", "job-q", "job-h", "job-w"]);
  // --follow: links learnt in one batch hold for the next.
  t.deepEqual(jobs(keep([rec("llm-worker-rbee", "job-w"), rec("queen-rbee", "job-z")])), ["job-w"]);
});

test("--service and --correlation-id do not hide the links of a --job subtree", (t) => {
  const keep = logFilter({ job: "job-q", service: "llm-worker-rbee" });
  t.deepEqual(jobs(keep([rec("queen-rbee", "job-q"), rec("rbee-hive", "job-h", "job-q"), rec("llm-worker-rbee", "job-w", "job-h")])), ["job-w"]);
  const corr = logFilter({ correlationId: "corr-b" });
  t.deepEqual(jobs(corr([rec("queen-rbee", "job-1"), rec("queen-rbee", "job-2", undefined, "corr-b")])), ["job-2"]);
});

test("a parent cycle in a broken log does not hang the filter", (t) => {
  const keep = logFilter({ job: "job-q" });
  t.deepEqual(keep([rec("rbee-hive", "job-a", "job-b"), rec("rbee-hive", "job-b", "job-a")]), []);
});
