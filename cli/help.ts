import { GLOBAL_FLAGS, TOP_WORDS, findGroup, findTop, type CommandSpec, type FlagSpec, type GroupSpec } from "./spec.js";

const flagLabel = (f: FlagSpec): string =>
  `${f.short ? `-${f.short}, ` : "    "}--${f.name}${f.value ? ` ${f.value}` : ""}`;

function flagLines(flags: FlagSpec[], alignWith: FlagSpec[] = []): string[] {
  const width = Math.max(...[...flags, ...alignWith].map((f) => flagLabel(f).length)) + 2;
  return flags.map((f) => `  ${flagLabel(f).padEnd(width)}${f.help}`);
}

function rows(pairs: [string, string][]): string[] {
  const width = Math.max(...pairs.map(([a]) => a.length)) + 2;
  return pairs.map(([a, b]) => `  ${a.padEnd(width)}${b}`);
}

/** Wraps prose at 78 columns; help is read in terminals of any width, 80 is the floor. */
function wrap(text: string, width = 78): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out;
}

export function topHelp(version: string): string {
  const pairs: [string, string][] = TOP_WORDS.map((w) => {
    const g = findGroup(w);
    if (g) return [`${w} ${g.subcommands.map((c) => c.path[1]).join("|")}`, g.summary];
    const c = findTop(w) as CommandSpec;
    return [`${w}${c.args ? ` ${c.args}` : ""}`, c.summary];
  });
  return [
    `rbee ${version}: one LLM inference service from the GPUs and CPUs of several machines.`,
    "",
    "Usage: rbee <command> [options]",
    "",
    "Commands:",
    ...rows(pairs),
    "",
    "Global options:",
    ...flagLines(GLOBAL_FLAGS),
    "",
    "Run 'rbee <command> --help' for a command's options; see rbee(1) for details.",
    "Exit status: 0 completed, 1 failed, 2 usage error, 3 queen unreachable, 130 cancelled.",
    "",
  ].join("\n");
}

export function groupHelp(g: GroupSpec): string {
  return [
    `Usage: rbee ${g.name} <${g.subcommands.map((c) => c.path[1]).join("|")}> [options]`,
    "",
    g.summary,
    "",
    "Commands:",
    ...rows(g.subcommands.map((c) => [`${c.path[1]}${c.args ? ` ${c.args}` : ""}`, c.summary])),
    "",
    "Global options:",
    ...flagLines(GLOBAL_FLAGS),
    "",
    `Run 'rbee ${g.name} <command> --help' for a command's options.`,
    "",
  ].join("\n");
}

export function commandHelp(c: CommandSpec): string {
  const lines = [`Usage: rbee ${c.path.join(" ")}${c.args ? ` ${c.args}` : ""}${c.flags.length ? " [options]" : ""}`, "", ...wrap(c.description), ""];
  if (c.flags.length) lines.push("Options:", ...flagLines(c.flags, GLOBAL_FLAGS), "");
  lines.push("Global options:", ...flagLines(GLOBAL_FLAGS, c.flags), "");
  if (c.examples?.length) lines.push("Examples:", ...c.examples.map((e) => `  ${e}`), "");
  return lines.join("\n");
}
