import { render, type Instance } from "ink";
import type { JobEvent } from "../../shared/protocol.js";
import type { EventSink } from "../sinks.js";
import { JobStore } from "./job-store.js";
import { JobView } from "./JobView.js";

/** Publish at most every 50 ms; Ink itself is held to 20 frames a second. */
const BATCH_MS = 50;
const MAX_FPS = 20;

/** The terminal face: an Ink app rendering the reducer's state; Ctrl-C stays with the keeper (SIGINT -> DELETE). */
export class TuiSink implements EventSink {
  private readonly store = new JobStore(BATCH_MS);
  private readonly instance: Instance;

  constructor(stdout: NodeJS.WriteStream, stderr: NodeJS.WriteStream) {
    this.instance = render(<JobView store={this.store} />, {
      stdout,
      stderr,
      exitOnCtrlC: false,
      patchConsole: false,
      maxFps: MAX_FPS,
      incrementalRendering: true,
    });
  }

  created(jobId: string, operation: string): void {
    this.store.dispatch({ type: "created", jobId, operation });
  }

  event(e: JobEvent): void {
    this.store.dispatch({ type: "event", event: e });
  }

  cancelling(): void {
    this.store.dispatch({ type: "cancelling" });
  }

  async finish(elapsedMs: number): Promise<void> {
    this.store.finish(elapsedMs);
    await this.instance.waitUntilExit();
  }
}
