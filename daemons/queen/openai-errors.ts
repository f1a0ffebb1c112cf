import { RbeeError, toRbeeError, type ErrorCode } from "../../shared/errors.js";

/** Capacity problems are 503 on the OpenAI routes, the status OpenAI clients know as "try again later". */
const OPENAI_STATUS: Partial<Record<ErrorCode, number>> = {
  QUEUE_FULL: 503,
  HIVE_UNREACHABLE: 503,
  INSUFFICIENT_MEMORY: 503,
};

/** An rbee error as the OpenAI routes answer it: its own HTTP status and the request field it is about. */
export class OpenAiError extends RbeeError {
  readonly param: string | null;
  constructor(code: ErrorCode, message: string, param: string | null = null, options?: { cause?: unknown }) {
    super(code, message, options);
    this.param = param;
  }
  override get status(): number {
    return OPENAI_STATUS[this.code] ?? super.status;
  }
}

/** The field an `invalid(field, ...)` message starts with ("messages[0].content: must be ..."). */
const FIELD_PREFIX = /^([A-Za-z_][A-Za-z0-9_]*(?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_]*)*): /;

export function toOpenAiError(err: unknown): OpenAiError {
  if (err instanceof OpenAiError) return err;
  const e = toRbeeError(err);
  const field = e.code === "INVALID_REQUEST" ? (FIELD_PREFIX.exec(e.message)?.[1] ?? null) : null;
  return new OpenAiError(e.code, e.message, field === "body" ? null : field, { cause: e });
}

/** OpenAI's error `type` for a status: what its clients switch on. */
function errorType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 429) return "rate_limit_error";
  return status >= 500 || status === 499 ? "server_error" : "invalid_request_error";
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

/** OpenAI's error shape with `code` set to the rbee code (CONTRACT.md section 2). */
export function openAiErrorBody(err: unknown): OpenAiErrorBody {
  const e = toOpenAiError(err);
  return { error: { message: e.message, type: errorType(e.status), param: e.param, code: e.code } };
}
