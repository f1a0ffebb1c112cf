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

/** The TUI needs a terminal on stdout; --json and pipes get the scripted faces; TERM=dumb gets plain text. */
export function outputMode(json: boolean, stdout: { isTTY?: boolean }, env: NodeJS.ProcessEnv): OutputMode {
  if (json) return "json";
  if (stdout.isTTY && env["TERM"] !== "dumb") return "tui";
  return "plain";
}
