import meow, { type AnyFlags } from "meow";
import { usageError } from "./exit-codes.js";
import { GLOBAL_FLAGS, type CommandSpec } from "./spec.js";

export type FlagValue = string | boolean | string[] | undefined;

/** A command line after meow: positionals and flags by their kebab-case names. */
export interface ParsedArgs {
  spec: CommandSpec;
  input: string[];
  flags: Record<string, FlagValue>;
}

const camel = (kebab: string): string => kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Parses one command's flags with meow; `argv` comes from locate() (command words removed, flags checked). */
export function parseArgs(spec: CommandSpec, argv: string[], version: string): ParsedArgs {
  const defs = [...GLOBAL_FLAGS, ...spec.flags];
  const flags: AnyFlags = {};
  for (const f of defs) {
    flags[camel(f.name)] = {
      type: f.kind,
      ...(f.multiple ? { isMultiple: true } : {}),
      ...(f.short ? { shortFlag: f.short } : {}),
    } as AnyFlags[string];
  }
  let cli: ReturnType<typeof meow<AnyFlags>>;
  try {
    cli = meow({
      importMeta: import.meta,
      argv,
      flags,
      pkg: { name: "rbee", version },
      description: false,
      help: false,
      autoHelp: false,
      autoVersion: false,
      booleanDefault: undefined,
      allowUnknownFlags: true,
    });
  } catch (err) {
    // meow throws for a single-valued flag given twice.
    const message = (err as Error).message.replace(/^The flag/, "option").replace(/--([a-z]+[A-Z][A-Za-z]*)/g, (_, c: string) => `--${c.replace(/[A-Z]/g, (x) => `-${x.toLowerCase()}`)}`);
    throw usageError(message);
  }
  const out: Record<string, FlagValue> = {};
  for (const f of defs) {
    const v = (cli.flags as Record<string, unknown>)[camel(f.name)];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    if (f.kind === "string" && (v === "" || (Array.isArray(v) && v.some((x) => x === "")))) {
      throw usageError(`option --${f.name} needs a value${f.value ? ` (${f.value})` : ""}.`);
    }
    out[f.name] = Array.isArray(v) ? v.map(String) : typeof v === "boolean" ? v : String(v);
  }
  const input = cli.input.map(String);
  const where = `rbee ${spec.path.join(" ")}`;
  if (input.length < spec.minArgs) throw usageError(`"${where}" needs ${spec.args}.`, `See ${where} --help.`);
  if (input.length > spec.maxArgs) {
    throw usageError(`unexpected argument "${input[spec.maxArgs]}" for "${where}".`, `Usage: ${where}${spec.args ? ` ${spec.args}` : ""} [options]`);
  }
  return { spec, input, flags: out };
}

/** A string flag's value (the last one, when given several times by a flag that is not repeatable). */
export const str = (args: ParsedArgs, name: string): string | undefined => {
  const v = args.flags[name];
  return typeof v === "string" ? v : undefined;
};

export const bool = (args: ParsedArgs, name: string): boolean => args.flags[name] === true;

export const list = (args: ParsedArgs, name: string): string[] => {
  const v = args.flags[name];
  return Array.isArray(v) ? v : typeof v === "string" ? [v] : [];
}

/** An integer flag; the range is checked by the operation's validator, the number format here. */
export function intFlag(args: ParsedArgs, name: string): number | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v.trim())) throw usageError(`option --${name} must be an integer, got "${v}".`);
  return Number(v);
}

export function numFlag(args: ParsedArgs, name: string): number | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw usageError(`option --${name} must be a number, got "${v}".`);
  return n;
}
