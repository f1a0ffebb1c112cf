import { usageError } from "./exit-codes.js";
import { commandHelp, groupHelp, topHelp } from "./help.js";
import { GLOBAL_FLAGS, TOP_WORDS, findGroup, findTop, type CommandSpec, type FlagSpec } from "./spec.js";
import { closest } from "./suggest.js";

/** What the command line asks for, found without meow so --help and --version stay cheap. */
export type Located =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "command"; spec: CommandSpec; /** argv without the command words, for meow */ argv: string[] };

const isNegativeNumber = (s: string): boolean => /^-(?:\d+|\d*\.\d+)$/.test(s);
const isFlagToken = (s: string): boolean => s.length > 1 && s.startsWith("-") && !isNegativeNumber(s);

/** The flag a token names (`--max-tokens=3`, `--no-json`, `-h`), or undefined when none matches. */
function matchFlag(token: string, flags: FlagSpec[]): { flag: FlagSpec; inline: boolean } | undefined {
  if (token.startsWith("--")) {
    const body = token.slice(2);
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const direct = flags.find((f) => f.name === name);
    if (direct) return { flag: direct, inline: eq >= 0 };
    const negated = name.startsWith("no-") ? flags.find((f) => f.kind === "boolean" && f.name === name.slice(3)) : undefined;
    return negated && eq < 0 ? { flag: negated, inline: true } : undefined;
  }
  const eq = token.indexOf("=");
  const short = eq >= 0 ? token.slice(1, eq) : token.slice(1);
  const flag = flags.find((f) => f.short === short);
  return flag ? { flag, inline: eq >= 0 } : undefined;
}

const flagNameOf = (token: string): string => token.replace(/=.*$/, "");

export function locate(argv: readonly string[], version: string): Located {
  const sep = argv.indexOf("--");
  const before = sep >= 0 ? argv.slice(0, sep) : [...argv];
  const words: number[] = [];
  let top: string | undefined;
  let group = undefined as ReturnType<typeof findGroup>;
  let spec: CommandSpec | undefined;
  let help = false;
  let wantVersion = false;
  const known = (): FlagSpec[] => [...GLOBAL_FLAGS, ...(spec?.flags ?? group?.subcommands.flatMap((c) => c.flags) ?? [])];

  for (let i = 0; i < before.length; i++) {
    const token = before[i] as string;
    if (isFlagToken(token)) {
      const m = matchFlag(token, known());
      if (m?.flag.name === "help") help = true;
      if (m?.flag.name === "version") wantVersion = true;
      if (m && m.flag.kind === "string" && !m.inline) i++;
      continue;
    }
    if (spec) continue;
    if (top === undefined) {
      top = token;
      words.push(i);
      group = findGroup(token);
      spec = findTop(token);
      if (!group && !spec) {
        if (help) break;
        const guess = closest(token, TOP_WORDS);
        throw usageError(`unknown command "${token}".`, guess ? `Did you mean "rbee ${guess}"? See rbee --help.` : "See rbee --help for the commands.");
      }
    } else if (group) {
      spec = group.subcommands.find((c) => c.path[1] === token);
      words.push(i);
      if (!spec) {
        const names = group.subcommands.map((c) => c.path[1] as string);
        const guess = closest(token, names);
        throw usageError(
          `unknown command "rbee ${group.name} ${token}".`,
          guess ? `Did you mean "rbee ${group.name} ${guess}"?` : `"rbee ${group.name}" takes: ${names.join(", ")}.`,
        );
      }
    }
  }

  if (help) {
    if (spec) return { kind: "help", text: commandHelp(spec) };
    if (group) return { kind: "help", text: groupHelp(group) };
    if (top !== undefined) {
      const guess = closest(top, TOP_WORDS);
      throw usageError(`unknown command "${top}".`, guess ? `Did you mean "rbee ${guess}"?` : "See rbee --help.");
    }
    return { kind: "help", text: topHelp(version) };
  }
  if (wantVersion && !spec) return { kind: "version" };
  if (top === undefined) return { kind: "help", text: topHelp(version) };
  if (!spec) {
    const g = group as NonNullable<typeof group>;
    throw usageError(`"rbee ${g.name}" needs a command: ${g.subcommands.map((c) => c.path[1]).join(", ")}.`, `See rbee ${g.name} --help.`);
  }
  if (wantVersion) return { kind: "version" };

  // Unknown flags are usage errors; meow is told to allow them so this one check owns the message.
  const allowed = [...GLOBAL_FLAGS, ...spec.flags];
  for (let i = 0; i < before.length; i++) {
    const token = before[i] as string;
    if (!isFlagToken(token)) continue;
    const m = matchFlag(token, allowed);
    if (!m) {
      const name = flagNameOf(token);
      const guess = closest(name.replace(/^-+/, ""), allowed.map((f) => f.name));
      throw usageError(
        `unknown option ${name} for "rbee ${spec.path.join(" ")}".`,
        guess ? `Did you mean --${guess}? See rbee ${spec.path.join(" ")} --help.` : `See rbee ${spec.path.join(" ")} --help.`,
      );
    }
    if (m.flag.kind === "string" && !m.inline) {
      const next = before[i + 1];
      if (next === undefined || isFlagToken(next)) throw usageError(`option --${m.flag.name} needs a value${m.flag.value ? ` (${m.flag.value})` : ""}.`);
      i++;
    }
  }
  const rest = argv.filter((_, i) => !words.includes(i));
  return { kind: "command", spec, argv: rest };
}
