import { mkdir, open, rename, stat, unlink, type FileHandle } from "node:fs/promises";
import { request, type Dispatcher } from "undici";
import { RbeeError } from "../../shared/errors.js";
import { GGUF_MAGIC } from "../../shared/gguf/writer.js";
import type { Job } from "../../shared/job.js";
import { VERSION } from "../../shared/version.js";
import { formatBytes } from "../../shared/units.js";
import { readModelInfo, type Catalog, type ModelInfo } from "./catalog.js";
import { resolveModelSource } from "./model-source.js";

export interface DownloadOptions {
  /** least time between two progress events (default 250 ms, never under 100 ms: at most ~10 a second) */
  progressIntervalMs?: number;
  dispatcher?: Dispatcher;
}

const ACTION = "model_download";
const MAX_REDIRECTS = 10;
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
// Errors of the models folder, not of the network: the partial file is removed, since it cannot grow.
const DISK_ERRORS = new Set(["ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EFBIG", "EIO", "ENOTDIR", "EISDIR"]);

const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

/** A failure writing the models folder, told apart from network failures while streaming. */
class DiskError extends Error {
  constructor(readonly reason: unknown) {
    super((reason as Error).message);
  }
}

/**
 * model_download: streams a URL or `hf:` file into `<id>.gguf.part` with throttled `progress` events (bytes),
 * resumes a partial file with a Range request, checks the GGUF magic and header, then renames the file into the
 * catalog. A model already there completes at once. A second download of the same id while one runs is refused
 * (INVALID_REQUEST). Cancelling through `job.signal` keeps the partial file for a later resume.
 */
export async function downloadModel(
  job: Job,
  catalog: Catalog,
  model: string,
  name?: string,
  opts: DownloadOptions = {},
): Promise<ModelInfo> {
  const { url, id } = resolveModelSource(model, name);
  if (await catalog.has(id)) {
    job.narrate(ACTION, `${id} is already in the catalog; nothing to download.`, { target: id });
    return catalog.get(id);
  }
  const release = catalog.beginDownload(id, name !== undefined ? "name" : "model");
  try {
    return await new Download(job, catalog, url, id, opts).run();
  } finally {
    release();
  }
}

class Download {
  private readonly file: string;
  private readonly part: string;
  private readonly intervalMs: number;
  private host: string;

  constructor(
    private readonly job: Job,
    private readonly catalog: Catalog,
    private readonly url: URL,
    private readonly id: string,
    private readonly opts: DownloadOptions,
  ) {
    this.file = catalog.pathFor(id);
    this.part = catalog.partPathFor(id);
    this.intervalMs = Math.max(100, opts.progressIntervalMs ?? 250);
    this.host = url.host;
  }

  async run(): Promise<ModelInfo> {
    const started = performance.now();
    await mkdir(this.catalog.modelsDir, { recursive: true }).catch((err: unknown) => {
      // mkdir's own words for this ("file already exists") send people looking for the wrong file.
      if (errno(err) === "EEXIST") throw this.failure(`the models folder ${this.catalog.modelsDir} is a file, not a folder; move that file away`, err);
      throw this.diskFailure(err);
    });
    let offset = await sizeOf(this.part);
    let received = 0;
    let ready = false;
    // Two rounds at most: the second when the server's answer makes the partial file useless.
    for (let round = 0; round < 2; round++) {
      const res = await this.open(offset);
      const { statusCode, headers } = res;
      if (statusCode === 416 && offset > 0) {
        await res.body.dump();
        const total = contentRange(headers["content-range"])?.total ?? null;
        if (total === null || total === offset) {
          this.job.narrate(ACTION, `The partial file of ${this.id} is already complete (${formatBytes(offset)}).`, { target: this.id });
          ready = true;
          break;
        }
        this.job.narrate(ACTION, `The partial file of ${this.id} is larger than the file on ${this.host}; starting again.`, { target: this.id, level: "warn" });
        offset = await this.dropPart();
        continue;
      }
      if (statusCode !== 200 && statusCode !== 206) {
        await res.body.dump().catch(() => {});
        throw this.httpFailure(statusCode);
      }
      let total = contentLength(headers["content-length"]);
      let append = false;
      if (statusCode === 206) {
        const range = contentRange(headers["content-range"]);
        if (range === null || range.start !== offset) {
          await res.body.dump().catch(() => {});
          this.job.narrate(ACTION, `${this.host} answered a different range than asked; starting again.`, { target: this.id, level: "warn" });
          offset = await this.dropPart();
          continue;
        }
        total = range.total ?? (total === null ? null : offset + total);
        append = offset > 0;
        if (append) this.job.narrate(ACTION, `Resuming ${this.id} at ${offset} bytes${total === null ? "" : ` of ${total}`}.`, { target: this.id });
      } else if (offset > 0) {
        this.job.narrate(ACTION, `${this.host} does not resume downloads; starting ${this.id} again from zero.`, { target: this.id, level: "warn" });
        offset = 0;
      }
      if (!append) {
        const size = total === null ? "size unknown" : formatBytes(total);
        const via = this.host === this.url.host ? "" : ` via ${this.host}`;
        this.job.narrate(ACTION, `Downloading ${this.id} from ${this.url.host}${via} (${size}).`, { target: this.id });
      }
      received = await this.stream(res.body, offset, total, append);
      ready = true;
      break;
    }
    if (!ready) throw this.failure(`${this.host} does not answer range requests consistently`);
    return this.finish(started, received);
  }

  /** GET with Range when resuming; follows redirects itself so messages name the host that answered. */
  private async open(offset: number): Promise<Dispatcher.ResponseData> {
    let current = this.url;
    const headers: Record<string, string> = { "user-agent": `rbee/${VERSION}`, "accept-encoding": "identity" };
    if (offset > 0) headers["range"] = `bytes=${offset}-`;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      this.host = current.host;
      let res: Dispatcher.ResponseData;
      try {
        res = await request(current, {
          method: "GET",
          headers,
          signal: this.job.signal,
          headersTimeout: 60_000,
          bodyTimeout: 120_000,
          ...(this.opts.dispatcher ? { dispatcher: this.opts.dispatcher } : {}),
        });
      } catch (err) {
        throw this.networkFailure(err, offset, "connecting");
      }
      const location = res.headers["location"];
      if (!REDIRECT_STATUS.has(res.statusCode) || typeof location !== "string") return res;
      await res.body.dump().catch(() => {});
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw this.failure(`${current.host} redirected to an invalid location`);
      }
      if (next.protocol !== "https:" && next.protocol !== "http:") throw this.failure(`${current.host} redirected to a ${next.protocol} URL`);
      this.job.narrate(ACTION, `${current.host} redirected the download to ${next.host}.`, { target: this.id, level: "debug" });
      current = next;
    }
    throw this.failure(`more than ${MAX_REDIRECTS} redirects from ${this.url.host}`);
  }

  /** Writes the body into the partial file; returns the bytes received in this request. */
  private async stream(body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, offset: number, total: number | null, append: boolean): Promise<number> {
    let handle: FileHandle;
    try {
      handle = await open(this.part, append ? "a" : "w");
    } catch (err) {
      body.destroy();
      throw this.diskFailure(err);
    }
    let done = offset;
    let head = append ? null : Buffer.alloc(0);
    let last = performance.now();
    this.job.progress(ACTION, this.id, done, total, "bytes");
    try {
      for await (const chunk of body) {
        if (head !== null) {
          // The magic is checked on the first bytes, so an HTML error page is not downloaded in full.
          head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)]);
          if (head.length >= 4) {
            if (head.readUInt32LE(0) !== GGUF_MAGIC) throw this.notGguf(`it starts with ${JSON.stringify(head.toString("latin1"))}`);
            head = null;
          }
        }
        await writeAll(handle, chunk);
        done += chunk.length;
        const now = performance.now();
        if (now - last >= this.intervalMs) {
          last = now;
          this.job.progress(ACTION, this.id, done, total, "bytes");
        }
      }
      if (head !== null) throw this.notGguf(`it is only ${head.length} bytes long`);
    } catch (err) {
      body.destroy();
      await handle.close().catch(() => {});
      if (err instanceof RbeeError && err.code === "NOT_GGUF") {
        await unlink(this.part).catch(() => {});
        throw err;
      }
      if (err instanceof DiskError) {
        await unlink(this.part).catch(() => {});
        throw this.diskFailure(err.reason);
      }
      if (this.job.signal.aborted) {
        this.job.narrate(ACTION, `Download of ${this.id} stopped at ${done} bytes; the partial file is kept, so running it again resumes.`, { target: this.id });
        throw this.job.signal.reason;
      }
      throw this.networkFailure(err, done, "downloading");
    }
    try {
      await handle.close();
    } catch (err) {
      await unlink(this.part).catch(() => {});
      throw this.diskFailure(err);
    }
    if (total !== null && done < total) {
      throw this.failure(`the connection to ${this.host} closed at ${done} of ${total} bytes; run the download again to resume`);
    }
    this.job.progress(ACTION, this.id, done, total ?? done, "bytes");
    return done - offset;
  }

  /** Checks the whole file is a readable GGUF, renames it into the catalog and reads its metadata. */
  private async finish(started: number, received: number): Promise<ModelInfo> {
    try {
      await readModelInfo(this.id, this.part);
    } catch (err) {
      await unlink(this.part).catch(() => {});
      if (err instanceof RbeeError) throw this.notGguf(err.message.replace(`${this.part}: `, ""));
      throw this.diskFailure(err);
    }
    try {
      await rename(this.part, this.file);
    } catch (err) {
      throw this.diskFailure(err);
    }
    const info = await this.catalog.get(this.id);
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? `, ${formatBytes(Math.round(received / seconds))}/s` : "";
    this.job.narrate(
      ACTION,
      `Downloaded ${this.id}: ${formatBytes(info.size_bytes)} in ${seconds.toFixed(1)} s${rate} (${info.architecture ?? "unknown architecture"}, ${info.quantization ?? "unknown quantization"}).`,
      { target: this.id },
    );
    return info;
  }

  private async dropPart(): Promise<number> {
    await unlink(this.part).catch(() => {});
    return 0;
  }

  private failure(why: string, cause?: unknown): RbeeError {
    return new RbeeError("DOWNLOAD_FAILED", `Download of ${this.id} failed: ${why}.`, { cause });
  }

  private httpFailure(status: number): RbeeError {
    const hint =
      status === 401 || status === 403
        ? " (the file may be gated or private)"
        : status === 404 || status === 410
          ? " (no such file; check the URL)"
          : status === 429
            ? " (rate limited; try again later)"
            : status >= 500
              ? " (a server error; try again later)"
              : "";
    return this.failure(`HTTP ${status} from ${this.host}${hint}`);
  }

  private networkFailure(err: unknown, done: number, stage: "connecting" | "downloading"): unknown {
    if (this.job.signal.aborted) return this.job.signal.reason;
    const code = errno(err);
    const detail = (err as Error | undefined)?.message ?? String(err);
    const reason = code !== undefined && !detail.includes(code) ? `${code}: ${detail}` : detail;
    if (stage === "connecting") return this.failure(`cannot reach ${this.host} (${reason})`, err);
    const resume = done > 0 ? `; ${done} bytes are kept, so running it again resumes` : "";
    return this.failure(`the connection to ${this.host} broke (${reason})${resume}`, err);
  }

  private diskFailure(err: unknown): RbeeError {
    const code = errno(err);
    const why = (err as Error | undefined)?.message ?? String(err);
    const full = DISK_ERRORS.has(code ?? "") ? why : `${why}${code ? ` (${code})` : ""}`;
    return this.failure(`cannot write the models folder ${this.catalog.modelsDir}: ${full}`, err);
  }

  private notGguf(why: string): RbeeError {
    return new RbeeError("NOT_GGUF", `The file from ${this.host} for ${this.id} is not a GGUF model (${why}); it was removed.`);
  }
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  try {
    let off = 0;
    while (off < chunk.length) off += (await handle.write(chunk, off, chunk.length - off)).bytesWritten;
  } catch (err) {
    throw new DiskError(err);
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    const s = await stat(file);
    return s.isFile() ? s.size : 0;
  } catch {
    return 0;
  }
}

function contentLength(value: string | string[] | undefined): number | null {
  if (typeof value !== "string" || !/^\d+$/.test(value)) return null;
  return Number(value);
}

// "bytes 100-199/1000" -> {start: 100, total: 1000}; "bytes */1000" (a 416 answer) -> {start: null, total: 1000}.
function contentRange(value: string | string[] | undefined): { start: number | null; total: number | null } | null {
  if (typeof value !== "string") return null;
  const m = /^bytes\s+(?:(\d+)-\d+|\*)\/(\d+|\*)$/i.exec(value.trim());
  if (m === null) return null;
  return { start: m[1] === undefined ? null : Number(m[1]), total: m[2] === undefined || m[2] === "*" ? null : Number(m[2]) };
}
