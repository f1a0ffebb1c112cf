/** Stable error codes of the wire contract (CONTRACT.md sections 2 and 4), with their HTTP status. */
export const ERROR_STATUS = {
  INVALID_JSON: 400,
  INVALID_REQUEST: 400,
  UNKNOWN_OPERATION: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  JOB_FINISHED: 409,
  PAYLOAD_TOO_LARGE: 413,
  MODEL_NOT_FOUND: 404,
  HIVE_NOT_FOUND: 404,
  WORKER_NOT_FOUND: 404,
  HIVE_UNREACHABLE: 503,
  WORKER_CRASHED: 502,
  INSUFFICIENT_MEMORY: 507,
  CONTEXT_OVERFLOW: 400,
  DOWNLOAD_FAILED: 502,
  NOT_GGUF: 400,
  SSH_FAILED: 502,
  QUEUE_FULL: 503,
  TIMEOUT: 504,
  CANCELLED: 499,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_STATUS, value);
}

/** An error that carries a contract code; everything a daemon throws on purpose is one of these. */
export class RbeeError extends Error {
  override readonly name = "RbeeError";
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
  }
}

/** Thrown when a job was cancelled (by DELETE, a client leaving, or a cancelled downstream job). */
export class CancelledError extends RbeeError {
  constructor(message = "The job was cancelled.") {
    super("CANCELLED", message);
  }
}

export const invalid = (field: string, message: string): RbeeError =>
  new RbeeError("INVALID_REQUEST", `${field}: ${message}`);

/** Any thrown value as a contract error; unknown failures become INTERNAL with their message. */
export function toRbeeError(err: unknown): RbeeError {
  if (err instanceof RbeeError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new RbeeError("INTERNAL", message || "Internal error.", { cause: err });
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string };
}

export const errorBody = (err: RbeeError): ErrorBody => ({ error: err.toJSON() });
