import type { EndData, JobEvent, Level, Timing, Usage } from "../../shared/protocol.js";

/**
 * The job tree, built purely from a job's events. One node per job id in the events' `path`
 * (queen job -> hive job -> worker job). A downstream `end` is folded by the daemons, never
 * relayed, so a child's end is inferred: it is done once its parent's stream moves on (an event
 * from the parent itself or from a later sibling), and it takes the root's outcome when the root ends.
 */

export type NodeStatus = "running" | "completed" | "failed" | "cancelled";

export interface NarrationLine {
  level: Level;
  action: string;
  human: string;
}

/** A worker the hive stopped to make room for this job (narration `worker_evict`); kept for good, unlike narration. */
export interface EvictionLine {
  workerId: string;
  human: string;
}

/** The narration action a hive tells an eviction with. */
export const EVICT_ACTION = "worker_evict";

export interface ProgressLine {
  key: string;
  action: string;
  target: string | null;
  done: number;
  total: number | null;
  unit: string;
}

export interface JobNode {
  id: string;
  parentId: string | null;
  children: string[];
  /** From the node's first narration. */
  actor: string | null;
  node: string | null;
  status: NodeStatus;
  /** True when the status was inferred (no `end` of its own was seen). */
  inferred: boolean;
  narration: NarrationLine[];
  evictions: EvictionLine[];
  progress: ProgressLine[];
  error?: { code: string; message: string };
}

export interface TreeState {
  roots: string[];
  /** The job the keeper created, known before its first event. */
  rootOperation: string | null;
  nodes: Readonly<Record<string, JobNode>>;
  text: string;
  tokens: number;
  data: { jobId: string; action: string; payload: unknown }[];
  end: EndData | null;
  cancelling: boolean;
}

export type TreeAction =
  | { type: "created"; jobId: string; operation: string }
  | { type: "event"; event: JobEvent }
  | { type: "cancelling" };

/** Narration lines kept under each node. */
export const NARRATION_KEEP = 3;

export const initialTree: TreeState = {
  roots: [],
  rootOperation: null,
  nodes: {},
  text: "",
  tokens: 0,
  data: [],
  end: null,
  cancelling: false,
};

const newNode = (id: string, parentId: string | null): JobNode => ({
  id,
  parentId,
  children: [],
  actor: null,
  node: null,
  status: "running",
  inferred: false,
  narration: [],
  evictions: [],
  progress: [],
});

type Nodes = Record<string, JobNode>;

/** Copy-on-write access: a node is cloned once per reduction before it changes. */
function edit(nodes: Nodes, touched: Set<string>, id: string): JobNode {
  const n = nodes[id] as JobNode;
  if (touched.has(id)) return n;
  touched.add(id);
  const copy = { ...n, children: [...n.children] };
  nodes[id] = copy;
  return copy;
}

/** Sets every still-running node under `id` (and `id` itself when `self`) to `status`. */
function settle(nodes: Nodes, touched: Set<string>, id: string, status: NodeStatus, self: boolean): void {
  const n = nodes[id];
  if (!n) return;
  if (self && n.status === "running") {
    const e = edit(nodes, touched, id);
    e.status = status;
    e.inferred = true;
  }
  for (const c of n.children) settle(nodes, touched, c, status, true);
}

export function reduceTree(state: TreeState, action: TreeAction): TreeState {
  if (action.type === "cancelling") return state.cancelling ? state : { ...state, cancelling: true };
  if (action.type === "created") {
    if (state.nodes[action.jobId]) return { ...state, rootOperation: action.operation };
    return {
      ...state,
      rootOperation: action.operation,
      roots: [...state.roots, action.jobId],
      nodes: { ...state.nodes, [action.jobId]: newNode(action.jobId, null) },
    };
  }
  const event = action.event;
  const data = event.data;
  const path = Array.isArray(data.path) && data.path.length > 0 ? data.path : [data.job_id];
  const nodes: Nodes = { ...state.nodes };
  const touched = new Set<string>();
  let roots = state.roots;

  // Make the path's nodes (a child may show up before its parent says anything) and wake any that were inferred done.
  for (let i = 0; i < path.length; i++) {
    const id = path[i] as string;
    const parentId = i > 0 ? (path[i - 1] as string) : null;
    if (!nodes[id]) {
      nodes[id] = newNode(id, parentId);
      touched.add(id);
      if (parentId === null) roots = [...roots, id];
      else edit(nodes, touched, parentId).children.push(id);
    } else if (nodes[id].status !== "running" && nodes[id].inferred && event.event !== "end") {
      const n = edit(nodes, touched, id);
      n.status = "running";
      n.inferred = false;
    }
  }

  // The parent moved on: every other running child of each node on the path has finished.
  // (An `end` settles its own subtree below, with its own status.)
  for (let i = 0; i < (event.event === "end" ? 0 : path.length); i++) {
    const id = path[i] as string;
    const next = path[i + 1];
    for (const c of (nodes[id] as JobNode).children) if (c !== next) settle(nodes, touched, c, "completed", true);
  }

  const selfId = path[path.length - 1] as string;
  let { text, tokens, data: payloads, end } = state;
  switch (event.event) {
    case "narration": {
      const n = edit(nodes, touched, selfId);
      const d = event.data;
      if (n.actor === null) {
        n.actor = d.actor;
        n.node = d.node ?? null;
      }
      // An eviction stopped someone's loaded model: it stays on screen instead of scrolling by with the narration.
      if (d.action === EVICT_ACTION) n.evictions = [...n.evictions, { workerId: d.target ?? "?", human: d.human }];
      else n.narration = [...n.narration, { level: d.level, action: d.action, human: d.human }].slice(-NARRATION_KEEP);
      break;
    }
    case "progress": {
      const n = edit(nodes, touched, selfId);
      const d = event.data;
      const key = `${d.action}\u0000${d.target ?? ""}`;
      const line: ProgressLine = { key, action: d.action, target: d.target ?? null, done: d.done, total: d.total ?? null, unit: d.unit };
      const at = n.progress.findIndex((p) => p.key === key);
      n.progress = at >= 0 ? n.progress.map((p, i) => (i === at ? line : p)) : [...n.progress, line];
      break;
    }
    case "token":
      text += event.data.text;
      tokens++;
      break;
    case "data":
      payloads = [...payloads, { jobId: selfId, action: event.data.action, payload: event.data.payload }];
      break;
    case "end": {
      const d = event.data;
      const n = edit(nodes, touched, selfId);
      n.status = d.status;
      n.inferred = false;
      if (d.error) n.error = d.error;
      // Whatever still runs below a job that ended shared its fate: on failure, the branch that was active.
      settle(nodes, touched, selfId, d.status, false);
      if (path.length === 1 && roots[0] === selfId) end = d;
      break;
    }
  }
  return { ...state, roots, nodes, text, tokens, data: payloads, end };
}

/** A node's label: "rbee-hive localhost", from its first narration; the operation or id before that. */
export function nodeLabel(n: JobNode, state: TreeState): string {
  if (n.actor) return n.node ? `${n.actor} ${n.node}` : n.actor;
  if (n.parentId === null && state.rootOperation) return state.rootOperation;
  return n.id;
}

/** The tree in display order with each node's depth. */
export function flatten(state: TreeState): { node: JobNode; depth: number }[] {
  const out: { node: JobNode; depth: number }[] = [];
  const walk = (id: string, depth: number) => {
    const n = state.nodes[id];
    if (!n) return;
    out.push({ node: n, depth });
    for (const c of n.children) walk(c, depth + 1);
  };
  for (const r of state.roots) walk(r, 0);
  return out;
}

export interface Summary {
  status: NodeStatus;
  tokens: number;
  usage?: Usage;
  timing?: Timing;
  finishReason?: string;
  error?: { code: string; message: string };
}

export function summarize(state: TreeState): Summary | null {
  const e = state.end;
  if (!e) return null;
  const s: Summary = { status: e.status, tokens: e.usage?.completion_tokens ?? state.tokens };
  if (e.usage) s.usage = e.usage;
  if (e.timing) s.timing = e.timing;
  if (e.finish_reason) s.finishReason = e.finish_reason;
  if (e.error) s.error = e.error;
  return s;
}
