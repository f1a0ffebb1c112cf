import { intFlag, list, numFlag, str, bool } from "../args.js";
import type { CommandContext } from "../context.js";
import { usageError } from "../exit-codes.js";
import { runJob } from "../run-job.js";

async function readAll(stream: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8");
}

/** The prompt from PROMPT words, --prompt, or standard input when that is not a terminal. */
async function promptOf(ctx: CommandContext): Promise<string> {
  const words = ctx.args.input;
  const flag = str(ctx.args, "prompt");
  if (words.length > 0 && flag !== undefined) throw usageError("give the prompt once: as PROMPT or with --prompt, not both.");
  if (words.length > 0) return words.join(" ");
  if (flag !== undefined) return flag;
  if (ctx.stdin.isTTY) throw usageError("no prompt: give PROMPT, --prompt TEXT, or pipe the prompt on standard input.", "See rbee infer --help.");
  // One trailing newline is how `echo` ends a line, not part of the prompt.
  const text = (await readAll(ctx.stdin)).replace(/\r?\n$/, "");
  if (text.trim() === "") throw usageError("the prompt read from standard input is empty.");
  return text;
}

export async function run(ctx: CommandContext): Promise<number> {
  const a = ctx.args;
  const prompt = await promptOf(ctx);
  const system = str(a, "system");
  const op: { operation: string; [k: string]: unknown } = { operation: "infer" };
  if (system !== undefined) op["messages"] = [{ role: "system", content: system }, { role: "user", content: prompt }];
  else op["prompt"] = prompt;
  const fields: [string, unknown][] = [
    ["model", str(a, "model")],
    ["hive_id", str(a, "hive")],
    ["worker_id", str(a, "worker")],
    ["max_tokens", intFlag(a, "max-tokens")],
    ["temperature", numFlag(a, "temperature")],
    ["top_p", numFlag(a, "top-p")],
    ["top_k", intFlag(a, "top-k")],
    ["seed", intFlag(a, "seed")],
    ["stop", list(a, "stop").length ? list(a, "stop") : undefined],
    ["ignore_eos", bool(a, "ignore-eos") ? true : undefined],
    ["keep_alive", intFlag(a, "keep-alive")],
  ];
  for (const [k, v] of fields) if (v !== undefined) op[k] = v;
  return runJob(ctx, op);
}
