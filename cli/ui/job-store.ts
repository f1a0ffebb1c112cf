import { initialTree, reduceTree, type TreeAction, type TreeState } from "./reducer.js";

export interface ViewState {
  tree: TreeState;
  /** Set once the job's stream is over; the view then prints its final frame and exits. */
  done: boolean;
  /** Keeper-side wall time of the whole command, shown in the summary. */
  elapsedMs: number | null;
}

/**
 * Holds the reducer's state outside React and publishes it at most every `intervalMs`, so hundreds
 * of tokens per second cost one render per interval, not one per event.
 */
export class JobStore {
  private state: ViewState = { tree: initialTree, done: false, elapsedMs: null };
  private published: ViewState = this.state;
  private readonly listeners = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 50) {}

  dispatch(action: TreeAction): void {
    this.state = { ...this.state, tree: reduceTree(this.state.tree, action) };
    this.timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  finish(elapsedMs: number): void {
    this.state = { ...this.state, done: true, elapsedMs };
    this.flush();
  }

  flush = (): void => {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.published === this.state) return;
    this.published = this.state;
    for (const l of this.listeners) l();
  };

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): ViewState => this.published;

  /** The latest state, published or not (for tests and the final summary). */
  get current(): ViewState {
    return this.state;
  }
}
