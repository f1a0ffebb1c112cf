import { RbeeError } from "../../shared/errors.js";

/** A slot lent to one job; `release` gives it back (idempotent). */
export interface Lease<T> {
  readonly item: T;
  release(): void;
}

interface Waiter<T> {
  resolve: (lease: Lease<T>) => void;
  reject: (err: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export interface AcquireOptions {
  signal?: AbortSignal;
  /** Called once when the job has to wait, with its place in line (1 = next) and the slots busy ahead of it. */
  onQueued?: (place: number, busy: number) => void;
}

/**
 * The sequence slots of one loaded model and the FIFO of jobs waiting for one. Jobs get slots in arrival
 * order; a cancelled waiter leaves the line; more than `maxQueue` waiters is QUEUE_FULL. Slots are added
 * when the model is ready, so jobs that arrive while it loads simply wait in line.
 */
export class SlotPool<T> {
  private readonly free: T[] = [];
  private readonly waiters: Waiter<T>[] = [];
  private total = 0;
  private closedWith: RbeeError | undefined;
  /** Called whenever busy or queued changes (metrics, state). */
  onChange: () => void = () => {};

  constructor(readonly maxQueue: number) {}

  get size(): number {
    return this.total;
  }
  get busy(): number {
    return this.total - this.free.length;
  }
  get queued(): number {
    return this.waiters.length;
  }

  /** Adds slots (the model's sequences, once loaded) and hands them to waiting jobs in order. */
  add(items: readonly T[]): void {
    this.total += items.length;
    for (const item of items) this.put(item);
    this.onChange();
  }

  acquire(opts: AcquireOptions = {}): Promise<Lease<T>> {
    const { signal } = opts;
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (signal?.aborted) return Promise.reject(signal.reason);
    const item = this.waiters.length === 0 ? this.free.pop() : undefined;
    if (item !== undefined) {
      this.onChange();
      return Promise.resolve(this.lease(item));
    }
    if (this.waiters.length >= this.maxQueue) {
      return Promise.reject(new RbeeError("QUEUE_FULL", `${this.waiters.length} jobs are already waiting for this worker (--max-queue ${this.maxQueue}); try again later or spawn another worker.`));
    }
    return new Promise<Lease<T>>((resolve, reject) => {
      const waiter: Waiter<T> = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          this.onChange();
          reject(signal?.reason);
        },
      };
      this.waiters.push(waiter);
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      this.onChange();
      opts.onQueued?.(this.waiters.length, this.busy);
    });
  }

  /** Fails every waiting job (the worker is stopping or its model failed to load). */
  close(err: RbeeError): void {
    this.closedWith = err;
    for (const w of this.waiters.splice(0)) {
      w.signal?.removeEventListener("abort", w.onAbort);
      w.reject(err);
    }
    this.onChange();
  }

  private lease(item: T): Lease<T> {
    let released = false;
    return {
      item,
      release: () => {
        if (released) return;
        released = true;
        this.put(item);
        this.onChange();
      },
    };
  }

  private put(item: T): void {
    const next = this.waiters.shift();
    if (!next) {
      this.free.push(item);
      return;
    }
    next.signal?.removeEventListener("abort", next.onAbort);
    next.resolve(this.lease(item));
  }
}
