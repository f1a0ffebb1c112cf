import { invalid } from "./errors.js";

/** A field validator: returns the parsed value or throws INVALID_REQUEST naming the field. */
export interface Spec<T> {
  (value: unknown, field: string): T;
}
export interface OptionalSpec<T> extends Spec<T | undefined> {
  readonly optional: true;
}

export type Out<S> = S extends Spec<infer T> ? T : never;
type Fields = Record<string, Spec<unknown>>;
type OptionalKeys<F extends Fields> = { [K in keyof F]: F[K] extends { optional: true } ? K : never }[keyof F];
type Simplify<T> = { [K in keyof T]: T[K] } & {};
export type ObjectOut<F extends Fields> = Simplify<
  { [K in Exclude<keyof F, OptionalKeys<F>>]: Out<F[K]> } & { [K in OptionalKeys<F>]?: Exclude<Out<F[K]>, undefined> }
>;

const describe = (v: unknown): string =>
  // "got a undefined" would be how a missing field reads otherwise.
  v === undefined ? "nothing (the field is missing)" : v === null ? "null" : Array.isArray(v) ? "a list" : typeof v === "object" ? "an object" : `a ${typeof v}`;

export const optional = <T>(spec: Spec<T>): OptionalSpec<T> =>
  Object.assign((v: unknown, field: string) => (v === undefined ? undefined : spec(v, field)), {
    optional: true as const,
  });

export const withDefault = <T>(spec: Spec<T>, fallback: T): Spec<T> => (v, field) =>
  v === undefined ? fallback : spec(v, field);

export const string = (opts: { nonEmpty?: boolean; pattern?: RegExp; patternText?: string; maxLength?: number } = {}): Spec<string> =>
  (v, field) => {
    if (typeof v !== "string") throw invalid(field, `must be a string, got ${describe(v)}.`);
    if (opts.nonEmpty && v.length === 0) throw invalid(field, "must not be empty.");
    if (opts.maxLength !== undefined && v.length > opts.maxLength)
      throw invalid(field, `must be at most ${opts.maxLength} characters.`);
    if (opts.pattern && !opts.pattern.test(v)) throw invalid(field, opts.patternText ?? `must match ${opts.pattern}.`);
    return v;
  };

export const number = (opts: { integer?: boolean; min?: number; max?: number; minExclusive?: number } = {}): Spec<number> =>
  (v, field) => {
    const kind = opts.integer ? "an integer" : "a number";
    if (typeof v !== "number" || !Number.isFinite(v)) throw invalid(field, `must be ${kind}, got ${describe(v)}.`);
    if (opts.integer && !Number.isInteger(v)) throw invalid(field, `must be an integer, got ${v}.`);
    if (opts.min !== undefined && v < opts.min) throw invalid(field, `must be at least ${opts.min}, got ${v}.`);
    if (opts.minExclusive !== undefined && v <= opts.minExclusive)
      throw invalid(field, `must be greater than ${opts.minExclusive}, got ${v}.`);
    if (opts.max !== undefined && v > opts.max) throw invalid(field, `must be at most ${opts.max}, got ${v}.`);
    return v;
  };

export const boolean = (): Spec<boolean> => (v, field) => {
  if (typeof v !== "boolean") throw invalid(field, `must be true or false, got ${describe(v)}.`);
  return v;
};

export const oneOf = <const T extends readonly string[]>(values: T): Spec<T[number]> => (v, field) => {
  if (typeof v !== "string" || !values.includes(v)) throw invalid(field, `must be one of ${values.map((x) => JSON.stringify(x)).join(", ")}.`);
  return v as T[number];
};

export const list = <T>(item: Spec<T>, opts: { nonEmpty?: boolean; max?: number } = {}): Spec<T[]> => (v, field) => {
  if (!Array.isArray(v)) throw invalid(field, `must be a list, got ${describe(v)}.`);
  if (opts.nonEmpty && v.length === 0) throw invalid(field, "must not be an empty list.");
  if (opts.max !== undefined && v.length > opts.max) throw invalid(field, `must hold at most ${opts.max} items.`);
  return v.map((x, i) => item(x, `${field}[${i}]`));
};

/** Several specs tried in order; the first that accepts wins; the message of the last is kept. */
export const either = <A, B>(a: Spec<A>, b: Spec<B>, message: string): Spec<A | B> => (v, field) => {
  try {
    return a(v, field);
  } catch {
    try {
      return b(v, field);
    } catch {
      throw invalid(field, message);
    }
  }
};

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** An object of known fields; unknown fields are ignored (contract section 2). */
export const object = <F extends Fields>(fields: F): Spec<ObjectOut<F>> => (v, field) => {
  if (!isPlainObject(v)) throw invalid(field, `must be an object, got ${describe(v)}.`);
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(fields)) {
    // Own fields only: a key like "constructor" must never read Object.prototype.
    const parsed = spec(Object.hasOwn(v, key) ? v[key] : undefined, field === "body" ? key : `${field}.${key}`);
    if (parsed !== undefined) out[key] = parsed;
  }
  return out as ObjectOut<F>;
};
