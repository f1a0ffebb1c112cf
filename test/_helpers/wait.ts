/** A value that `if (v)` lets through. */
export type Truthy<T> = Exclude<T, false | 0 | 0n | "" | null | undefined>;

/**
 * Polls `predicate` every `every` ms until it returns a truthy value, and returns that value; throws naming
 * `what` once `ms` have passed. A `what` function is read at the deadline, so it can tell the last state.
 */
export async function waitFor<T>(what: string | (() => string), predicate: () => T | Promise<T>, ms = 15_000, every = 50): Promise<Truthy<Awaited<T>>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await predicate();
    if (value) return value as Truthy<Awaited<T>>;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
