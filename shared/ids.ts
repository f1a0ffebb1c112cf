import { randomBytes } from "node:crypto";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A random id of url-safe characters (no '-' or '_' so ids read cleanly in logs). */
export function randomId(length = 12): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

export const newJobId = (): string => `job-${randomId(12)}`;
export const newCorrelationId = (): string => `corr-${randomId(12)}`;
