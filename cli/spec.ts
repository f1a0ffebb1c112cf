/** The keeper's command tree: names, flags and help, in one table shared by the parser, --help and the man-page test. */

export interface FlagSpec {
  /** kebab-case, without dashes */
  name: string;
  kind: "string" | "boolean";
  /** May be given several times (`--stop a --stop b`). */
  multiple?: boolean;
  short?: string;
  /** Placeholder in help (`--model ID`). */
  value?: string;
  help: string;
}

export interface CommandSpec {
  /** `["model", "list"]`; also the dispatch key. */
  path: string[];
  /** Positional arguments as shown in usage: `[PROMPT...]`. */
  args: string;
  minArgs: number;
  maxArgs: number;
  summary: string;
  description: string;
  flags: FlagSpec[];
  examples?: string[];
}

export interface GroupSpec {
  name: string;
  summary: string;
  subcommands: CommandSpec[];
}

export const GLOBAL_FLAGS: FlagSpec[] = [
  { name: "queen-url", kind: "string", value: "URL", help: "The queen to talk to (env RBEE_QUEEN_URL; default http://127.0.0.1:8500)." },
  { name: "json", kind: "boolean", help: "Print every event as one JSON line on stdout, and nothing else there." },
  { name: "help", kind: "boolean", short: "h", help: "Show help for the command." },
  { name: "version", kind: "boolean", short: "v", help: "Print the version." },
];

const hive: FlagSpec = { name: "hive", kind: "string", value: "ID", help: "The hive to run it on (default localhost)." };
const keepAlive: FlagSpec = {
  name: "keep-alive",
  kind: "string",
  value: "SECONDS",
  help: "How long the worker stays loaded once idle (-1 forever, 0 unload at once; default 300).",
};
const modelName: FlagSpec = { name: "name", kind: "string", value: "ID", help: "The catalog id to store it under." };
const max = Number.POSITIVE_INFINITY;

const cmd = (c: Omit<CommandSpec, "minArgs" | "maxArgs"> & { minArgs?: number; maxArgs?: number }): CommandSpec => ({
  minArgs: 0,
  maxArgs: 0,
  ...c,
});

export const INFER = cmd({
  path: ["infer"],
  args: "[PROMPT...]",
  maxArgs: max,
  summary: "Generate text from a prompt, streaming the tokens.",
  description:
    "Runs an infer job on the queen, which picks (or spawns) a worker that has the model. Without PROMPT or --prompt, " +
    "the prompt is read from standard input when it is not a terminal. On a terminal the job tree, progress and tokens " +
    "are drawn live; otherwise the text goes to stdout and narration to stderr.",
  flags: [
    { name: "prompt", kind: "string", value: "TEXT", help: "The prompt (instead of PROMPT)." },
    { name: "system", kind: "string", value: "TEXT", help: "A system message; sends messages instead of a bare prompt." },
    { name: "model", kind: "string", value: "ID", help: "The model (default rbee-tiny)." },
    { name: "hive", kind: "string", value: "ID", help: "Pin the job to this hive." },
    { name: "worker", kind: "string", value: "ID", help: "Pin the job to this worker." },
    { name: "max-tokens", kind: "string", value: "N", help: "Tokens to generate at most (default 128)." },
    { name: "temperature", kind: "string", value: "T", help: "Sampling temperature, 0 to 2 (default 0.7)." },
    { name: "top-p", kind: "string", value: "P", help: "Nucleus sampling, above 0 and up to 1." },
    { name: "top-k", kind: "string", value: "K", help: "Sample from the K most likely tokens." },
    { name: "seed", kind: "string", value: "N", help: "Random seed, 0 to 4294967295." },
    { name: "stop", kind: "string", multiple: true, value: "TEXT", help: "Stop at this text (repeatable, up to 16)." },
    { name: "ignore-eos", kind: "boolean", help: "Keep generating past end of sequence, up to --max-tokens." },
    keepAlive,
  ],
  examples: ['rbee infer "Write a haiku about bees"', 'echo "Hello" | rbee infer --max-tokens 32 --json'],
});

export const EMBED = cmd({
  path: ["embed"],
  args: "TEXT...",
  minArgs: 1,
  maxArgs: max,
  summary: "Turn texts into embedding vectors.",
  description: "Runs an embed job; prints one vector (a JSON list of numbers) per TEXT, in order.",
  flags: [
    { name: "model", kind: "string", value: "ID", help: "The model (default rbee-tiny)." },
    { name: "hive", kind: "string", value: "ID", help: "Pin the job to this hive." },
    { name: "worker", kind: "string", value: "ID", help: "Pin the job to this worker." },
    keepAlive,
  ],
});

export const STATUS = cmd({
  path: ["status"],
  args: "",
  summary: "Show hives, devices, workers and models.",
  description:
    "Runs a status job on the queen and draws every hive with its devices, workers and models. For each worker, IDLE is the " +
    "time since its last job and KEEP-ALIVE LEFT the time until the hive unloads it (forever for keep_alive -1).",
  flags: [],
});

export const JOBS = cmd({
  path: ["jobs"],
  args: "",
  summary: "List the queen's jobs, newest first.",
  description: "Lists running and recently finished jobs on the queen (GET /v1/jobs).",
  flags: [],
});

export const CANCEL = cmd({
  path: ["cancel"],
  args: "JOB_ID",
  minArgs: 1,
  maxArgs: 1,
  summary: "Cancel a running job.",
  description: "Sends DELETE for the job on the queen (it reaches every downstream job) and waits for it to end.",
  flags: [],
});

export const LOGS = cmd({
  path: ["logs"],
  args: "",
  summary: "Show the daemons' logs on this machine, merged by time.",
  description:
    "Reads the JSON-line logs in the state folder (queen-rbee.log, rbee-hive-*.log, llm-worker-rbee-*.log), " +
    "merges them by timestamp and prints them; --json prints the lines as they are.",
  flags: [
    { name: "follow", kind: "boolean", short: "f", help: "Keep printing new lines as they are written." },
    { name: "correlation-id", kind: "string", value: "ID", help: "Only lines of this request." },
    { name: "job", kind: "string", value: "JOB_ID", help: "Only lines of this job and of the jobs it started, down to the worker's." },
    { name: "service", kind: "string", value: "NAME", help: "Only queen, hive or worker lines." },
  ],
});

export const GROUPS: GroupSpec[] = [
  {
    name: "queen",
    summary: "Start, stop or check the queen on this machine.",
    subcommands: [
      cmd({
        path: ["queen", "start"],
        args: "",
        summary: "Start queen-rbee in the background.",
        description: "Starts queen-rbee (log and pid file in the state folder) unless one already answers, and waits until it is healthy.",
        flags: [],
      }),
      cmd({
        path: ["queen", "stop"],
        args: "",
        summary: "Stop the queen (and the hives and workers it started).",
        description: "Sends SIGTERM to the pid in the state folder's queen-rbee.pid and waits until the process is gone.",
        flags: [],
      }),
      cmd({
        path: ["queen", "status"],
        args: "",
        summary: "Show whether the queen answers, its version and URL.",
        description: "Asks the queen's /health; exit status 3 when it does not answer.",
        flags: [],
      }),
    ],
  },
  {
    name: "hive",
    summary: "Start, stop, list or inspect hives.",
    subcommands: [
      cmd({ path: ["hive", "start"], args: "[HIVE]", maxArgs: 1, summary: "Start a hive (default localhost).", description: "Runs hive_start: a local process for localhost, else over SSH from hives.conf.", flags: [hive] }),
      cmd({ path: ["hive", "stop"], args: "[HIVE]", maxArgs: 1, summary: "Stop a hive and its workers.", description: "Runs hive_stop.", flags: [hive] }),
      cmd({ path: ["hive", "list"], args: "", summary: "List configured and running hives.", description: "Runs hive_list.", flags: [] }),
      cmd({ path: ["hive", "status"], args: "[HIVE]", maxArgs: 1, summary: "Show a hive's devices, workers and models.", description: "Runs hive_status.", flags: [hive] }),
    ],
  },
  {
    name: "worker",
    summary: "Spawn, list or stop workers.",
    subcommands: [
      cmd({
        path: ["worker", "spawn"],
        args: "",
        summary: "Spawn a worker and wait until its model is loaded.",
        description: "Runs worker_spawn on the hive.",
        flags: [
          hive,
          { name: "model", kind: "string", value: "ID", help: "The model to load (default rbee-tiny)." },
          { name: "device", kind: "string", value: "DEV", help: "auto, cpu or gpu:N (default auto)." },
          { name: "gpu-layers", kind: "string", value: "N", help: "auto, max or a number of layers to offload (default auto)." },
          { name: "context-size", kind: "string", value: "N", help: "Context size per sequence, in tokens (at least 64)." },
          { name: "parallel", kind: "string", value: "N", help: "Sequences served at once, 1 to 64 (default 1)." },
          keepAlive,
        ],
      }),
      cmd({ path: ["worker", "list"], args: "", summary: "List a hive's workers.", description: "Runs worker_list.", flags: [hive] }),
      cmd({ path: ["worker", "stop"], args: "WORKER_ID", minArgs: 1, maxArgs: 1, summary: "Stop one worker.", description: "Runs worker_stop.", flags: [hive] }),
    ],
  },
  {
    name: "model",
    summary: "Manage a hive's model catalog.",
    subcommands: [
      cmd({ path: ["model", "list"], args: "", summary: "List the models in a hive's catalog.", description: "Runs model_list.", flags: [hive] }),
      cmd({ path: ["model", "get"], args: "MODEL", minArgs: 1, maxArgs: 1, summary: "Show a model's GGUF metadata.", description: "Runs model_get.", flags: [hive] }),
      cmd({
        path: ["model", "download"],
        args: "URL",
        minArgs: 1,
        maxArgs: 1,
        summary: "Download a GGUF into the catalog (resumes a partial file).",
        description: "Runs model_download; URL is https://..., http://... or hf:OWNER/REPO/FILE.gguf.",
        flags: [hive, modelName],
      }),
      cmd({
        path: ["model", "import"],
        args: "PATH",
        minArgs: 1,
        maxArgs: 1,
        summary: "Add a GGUF already on the hive's disk to the catalog.",
        description: "Runs model_import; a relative PATH is made absolute from the current folder (for the localhost hive).",
        flags: [hive, modelName],
      }),
      cmd({ path: ["model", "delete"], args: "MODEL", minArgs: 1, maxArgs: 1, summary: "Remove a model from the catalog.", description: "Runs model_delete.", flags: [hive] }),
    ],
  },
];

export const TOP_COMMANDS: CommandSpec[] = [INFER, EMBED, STATUS, JOBS, CANCEL, LOGS];

/** Every runnable command. */
export const ALL_COMMANDS: CommandSpec[] = [...TOP_COMMANDS, ...GROUPS.flatMap((g) => g.subcommands)];

/** Top-level words in the order help lists them. */
export const TOP_WORDS: string[] = ["infer", "embed", "status", "queen", "hive", "worker", "model", "jobs", "cancel", "logs"];

export const findGroup = (name: string): GroupSpec | undefined => GROUPS.find((g) => g.name === name);
export const findTop = (name: string): CommandSpec | undefined => TOP_COMMANDS.find((c) => c.path[0] === name);
