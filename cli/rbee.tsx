#!/usr/bin/env node
// The keeper's entry: find the command (cheaply), let meow parse it, run one command function.
// Everything heavier (meow, undici, Ink, React) is imported only by the path that needs it.
import { VERSION } from "../shared/version.js";
import type { CommandContext } from "./context.js";
import { CliError, EXIT } from "./exit-codes.js";
import { locate } from "./locate.js";

type CommandModule = { run(ctx: CommandContext): Promise<number> };

const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  infer: () => import("./commands/infer.js"),
  embed: () => import("./commands/embed.js"),
  status: () => import("./commands/status.js"),
  jobs: () => import("./commands/jobs.js"),
  cancel: () => import("./commands/cancel.js"),
  logs: () => import("./commands/logs.js"),
  queen: () => import("./commands/queen.js"),
  hive: () => import("./commands/hive.js"),
  worker: () => import("./commands/worker.js"),
  model: () => import("./commands/model.js"),
};

let interruptHandler: (() => void) | undefined;
let interrupts = 0;

function onSigint(): void {
  interrupts++;
  const handler = interruptHandler;
  // The first Ctrl-C lets a running job cancel cleanly; with no job, or a second press, leave now.
  if (handler && interrupts === 1) handler();
  else process.exit(EXIT.cancelled);
}

async function main(argv: string[]): Promise<number> {
  const located = locate(argv, VERSION);
  if (located.kind === "help") {
    process.stdout.write(located.text);
    return EXIT.ok;
  }
  if (located.kind === "version") {
    process.stdout.write(`rbee ${VERSION}\n`);
    return EXIT.ok;
  }
  const [{ parseArgs }, { outputMode }] = await Promise.all([import("./args.js"), import("./context.js")]);
  const args = parseArgs(located.spec, located.argv, VERSION);
  process.on("SIGINT", onSigint);
  const ctx: CommandContext = {
    args,
    mode: outputMode(args.flags["json"] === true, process.stdout, process.env),
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    onInterrupt(handler) {
      interruptHandler = handler;
      return () => {
        if (interruptHandler === handler) interruptHandler = undefined;
      };
    },
  };
  const command = await (COMMANDS[located.spec.path[0] as string] as () => Promise<CommandModule>)();
  return command.run(ctx);
}

// A reader that went away (`rbee infer ... | head -1`) is not an error of ours.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(EXIT.ok);
  throw err;
});

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`rbee: ${err.message}\n${err.hint ? `${err.hint}\n` : ""}`);
      process.exit(err.exitCode);
    }
    process.stderr.write(`rbee: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(EXIT.failed);
  },
);
