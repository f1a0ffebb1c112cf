/** What the helpers need of ava's ExecutionContext: somewhere to register what undoes them. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A teardown list for hooks (t.teardown is not allowed in test.before): run it in test.after.always. */
export class Cleanup implements Teardown {
  private readonly fns: (() => unknown)[] = [];

  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }

  /** Runs every function, last registered first; one that fails does not stop the others. */
  async run(): Promise<void> {
    const errors: unknown[] = [];
    for (const fn of this.fns.splice(0).reverse()) await Promise.resolve().then(fn).catch((err: unknown) => errors.push(err));
    if (errors.length > 0) throw new AggregateError(errors, `${errors.length} cleanup(s) failed`);
  }
}
