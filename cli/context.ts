import type { ParsedArgs } from "./args.js";

export type OutputMode = "json" | "plain" | "tui";

/** What a command function gets: its parsed arguments and the process's streams and environment. */
export interface CommandContext {
  args: ParsedArgs;
  mode: OutputMode;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadStream;
  env: NodeJS.ProcessEnv;
  /**
   * Ctrl-C (SIGINT) calls the handler set here; with none set, or on a second Ctrl-C, the keeper
   * exits 130 at once. Returns a function that removes the handler.
   */
  onInterrupt(handler: () => void): () => void;
}

/** Ink's own CI test (is-in-ci): where it holds, Ink draws no live frame, only the last one. */
const inCi = (env: NodeJS.ProcessEnv): boolean =>
  ["CI", "CONTINUOUS_INTEGRATION"].some((k) => env[k] !== undefined && env[k] !== "0" && env[k] !== "false");

/**
 * The TUI needs a terminal on stdout; --json and pipes get the scripted faces; TERM=dumb gets plain
 * text, and so does a CI job with a terminal, where the TUI would stay blank until the job ended.
 */
export function outputMode(json: boolean, stdout: { isTTY?: boolean }, env: NodeJS.ProcessEnv): OutputMode {
  if (json) return "json";
  if (stdout.isTTY && env["TERM"] !== "dumb" && !inCi(env)) return "tui";
  return "plain";
}
