import { randomBytes } from "node:crypto";
import { copyFile, link, mkdir, readdir, stat, symlink, unlink } from "node:fs/promises";
import * as path from "node:path";
import { RbeeError, invalid } from "../../shared/errors.js";
import { quantizationName, readGgufHeader, type GgufReadValue } from "../../shared/gguf/reader.js";
import type { Job } from "../../shared/job.js";
import { isModelId } from "../../shared/protocol.js";
import { RBEE_TINY_ID, ensureRbeeTiny } from "../../shared/rbee-tiny.js";
import { formatBytes } from "../../shared/units.js";

/** The contract's model object. */
export interface ModelInfo {
  id: string;
  size_bytes: number;
  architecture: string | null;
  quantization: string | null;
  parameters: number | null;
  context_length: number | null;
  layers: number | null;
}

const MODEL_EXT = ".gguf";

const errno = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;

/** A file's identity and version; a cached header is reused while it is unchanged. */
const signature = (s: { dev: number; ino: number; size: number; mtimeMs: number }): string =>
  `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;

const numberOrNull = (v: GgufReadValue | undefined): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** The catalog's view of a GGUF file, read from its header only (never the tensor data). */
export async function readModelInfo(id: string, file: string): Promise<ModelInfo> {
  // Arrays (vocabularies) are skipped, not kept: only scalar metadata is shown.
  const header = await readGgufHeader(file, { maxArrayItems: 0 });
  const { metadata, tensors } = header;
  const arch = metadata["general.architecture"];
  const architecture = typeof arch === "string" && arch !== "" ? arch : null;
  return {
    id,
    size_bytes: header.fileSize,
    architecture,
    quantization: tensors.length > 0 || metadata["general.file_type"] !== undefined ? quantizationName(metadata, tensors) : null,
    parameters: tensors.length > 0 ? tensors.reduce((sum, t) => sum + t.elements, 0) : null,
    context_length: architecture === null ? null : numberOrNull(metadata[`${architecture}.context_length`]),
    layers: architecture === null ? null : numberOrNull(metadata[`${architecture}.block_count`]),
  };
}

/**
 * The hive's models: `<modelsDir>/<id>.gguf`, regular files or symlinks; downloads in progress are `<id>.gguf.part`
 * and never listed. `rbee-tiny` is built in: made on first use, listed once made.
 */
export class Catalog {
  readonly modelsDir: string;
  private readonly cache = new Map<string, { sig: string; info: ModelInfo }>();
  private readonly downloading = new Set<string>();

  constructor(modelsDir: string) {
    this.modelsDir = path.resolve(modelsDir);
  }

  /** The file of a model id; refuses anything that is not a model id, so no id leaves the folder. */
  pathFor(id: string, field = "model"): string {
    if (!isModelId(id)) {
      throw invalid(field, `${JSON.stringify(id.slice(0, 80))} is not a model id (lowercase letters, digits, '.', '_', '-'; no '..', no '/').`);
    }
    const file = path.join(this.modelsDir, `${id}${MODEL_EXT}`);
    // Belt and braces: the pattern already rules out separators.
    if (path.dirname(file) !== this.modelsDir) throw invalid(field, `${JSON.stringify(id)} would leave the models folder.`);
    return file;
  }

  partPathFor(id: string): string {
    return `${this.pathFor(id)}.part`;
  }

  /** Every readable model, sorted by id; files that are not readable GGUF are skipped. */
  async list(): Promise<ModelInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.modelsDir);
    } catch (err) {
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") return [];
      throw err;
    }
    const ids = names
      .filter((n) => n.endsWith(MODEL_EXT))
      .map((n) => n.slice(0, -MODEL_EXT.length))
      .filter(isModelId)
      .sort();
    const models: ModelInfo[] = [];
    for (const id of ids) {
      const info = await this.info(id).catch(() => undefined);
      if (info !== undefined) models.push(info);
    }
    for (const id of this.cache.keys()) if (!ids.includes(id)) this.cache.delete(id);
    return models;
  }

  /** A model's metadata; MODEL_NOT_FOUND when absent; NOT_GGUF when the file is not a readable GGUF. */
  async get(id: string): Promise<ModelInfo> {
    await this.resolve(id);
    try {
      return await this.info(id);
    } catch (err) {
      if (errno(err) === "ENOENT") throw this.notFound(id);
      throw err;
    }
  }

  /** The absolute path of a model's file (rbee-tiny is made on first use); MODEL_NOT_FOUND when absent. */
  async resolve(id: string): Promise<string> {
    const file = this.pathFor(id);
    if (id === RBEE_TINY_ID) return this.makeTiny();
    try {
      const s = await stat(file);
      if (!s.isFile()) throw this.notFound(id);
    } catch (err) {
      if (err instanceof RbeeError) throw err;
      if (errno(err) === "ENOENT" || errno(err) === "ENOTDIR") throw this.notFound(id);
      throw err;
    }
    return file;
  }

  /** rbee-tiny, written on first use; a models folder it cannot be written to is said plainly, not as a bare errno. */
  private async makeTiny(): Promise<string> {
    try {
      return await ensureRbeeTiny(this.modelsDir);
    } catch (err) {
      const code = errno(err);
      if (code === undefined) throw err;
      const why = code === "EEXIST" || code === "ENOTDIR" ? "it is a file, not a folder" : (err as Error).message;
      throw new RbeeError("INTERNAL", `Cannot write ${RBEE_TINY_ID} into the models folder ${this.modelsDir}: ${why}.`, { cause: err });
    }
  }

  /** Whether the id names a model here; rbee-tiny always does (it is made on demand). */
  async has(id: string): Promise<boolean> {
    if (!isModelId(id)) return false;
    if (id === RBEE_TINY_ID) return true;
    try {
      return (await stat(this.pathFor(id))).isFile();
    } catch {
      return false;
    }
  }

  /**
   * Removes a model (a symlink is removed, never its target). With no model but a partial download left
   * behind, removes that. Refused while the id is being downloaded; the app checks workers first.
   */
  async delete(id: string): Promise<void> {
    const file = this.pathFor(id);
    if (this.downloading.has(id)) throw invalid("model", `"${id}" is being downloaded; cancel that job first.`);
    const removed = (await removeIfPresent(file)) || (await removeIfPresent(`${file}.part`));
    this.cache.delete(id);
    if (!removed) throw this.notFound(id);
  }

  /**
   * model_import: links an existing GGUF into the catalog (a copy where symlinks are impossible).
   * The file must be a regular file starting with the GGUF magic; the id comes from `name` or the file name.
   */
  async import(job: Job | undefined, srcPath: string, name?: string): Promise<ModelInfo> {
    if (!path.isAbsolute(srcPath)) throw invalid("path", `${JSON.stringify(srcPath.slice(0, 200))} is not an absolute path.`);
    const source = path.resolve(srcPath);
    const id = name ?? path.basename(source).toLowerCase().replace(/\.gguf$/, "");
    if (!isModelId(id)) {
      throw name !== undefined
        ? invalid("name", `${JSON.stringify(name.slice(0, 80))} is not a model id (lowercase letters, digits, '.', '_', '-'; no '..').`)
        : invalid("name", `the file name ${JSON.stringify(path.basename(source))} does not make a model id; pass "name" to choose one.`);
    }
    await checkImportable(source);
    const target = this.pathFor(id, "name");
    if ((await this.has(id)) || this.downloading.has(id)) {
      throw invalid("name", `a model "${id}" is already in the catalog; delete it first or pass another "name".`);
    }
    await mkdir(this.modelsDir, { recursive: true });
    let how = "linked";
    try {
      await symlink(source, target);
    } catch (err) {
      if (errno(err) === "EEXIST") throw invalid("name", `a model "${id}" is already in the catalog; delete it first or pass another "name".`);
      how = "copied";
      job?.narrate("model_import", `Cannot link ${source} (${errno(err) ?? "error"}); copying it into the catalog instead.`, { target: id });
      await copyInto(source, target, id);
    }
    let info: ModelInfo;
    try {
      info = await this.info(id);
    } catch (err) {
      await unlink(target).catch(() => {});
      throw err;
    }
    job?.narrate("model_import", `Imported ${id} (${how} from ${source}, ${formatBytes(info.size_bytes)}).`, { target: id });
    return info;
  }

  /** Marks an id as being downloaded; returns the release function. A second download of the id is refused. */
  beginDownload(id: string, field = "model"): () => void {
    this.pathFor(id, field);
    if (this.downloading.has(id)) {
      throw invalid(field, `"${id}" is already being downloaded by another job; follow that job or cancel it first.`);
    }
    this.downloading.add(id);
    return () => this.downloading.delete(id);
  }

  isDownloading(id: string): boolean {
    return this.downloading.has(id);
  }

  private async info(id: string): Promise<ModelInfo> {
    const file = this.pathFor(id);
    const s = await stat(file);
    if (!s.isFile()) throw this.notFound(id);
    const sig = signature(s);
    const cached = this.cache.get(id);
    if (cached !== undefined && cached.sig === sig) return { ...cached.info };
    const info = await readModelInfo(id, file);
    this.cache.set(id, { sig, info });
    return { ...info };
  }

  private notFound(id: string): RbeeError {
    return new RbeeError(
      "MODEL_NOT_FOUND",
      `Model "${id}" is not in this hive's catalog (${this.modelsDir}); download it with model_download or add a local file with model_import.`,
    );
  }
}

async function removeIfPresent(file: string): Promise<boolean> {
  try {
    await unlink(file);
    return true;
  } catch (err) {
    if (errno(err) === "ENOENT") return false;
    throw err;
  }
}

/** model_import's checks on the source file: absolute, present, a regular file, readable, GGUF magic and header. */
async function checkImportable(source: string): Promise<void> {
  let s;
  try {
    s = await stat(source);
  } catch (err) {
    const why = errno(err) === "ENOENT" ? "does not exist on the hive's machine" : `cannot be read (${errno(err) ?? String(err)})`;
    throw invalid("path", `${source} ${why}.`);
  }
  if (!s.isFile()) throw invalid("path", `${source} is not a regular file.`);
  try {
    await readModelInfo(path.basename(source), source);
  } catch (err) {
    if (err instanceof RbeeError) throw err;
    throw invalid("path", `${source} cannot be read (${errno(err) ?? String(err)}).`);
  }
}

/** Copies to a hidden temporary name (never listed: no .gguf ending), then links it into place without replacing. */
async function copyInto(source: string, target: string, id: string): Promise<void> {
  const tmp = path.join(path.dirname(target), `.${id}.import-${randomBytes(4).toString("hex")}`);
  try {
    await copyFile(source, tmp);
    await link(tmp, target);
  } catch (err) {
    if (errno(err) === "EEXIST") throw invalid("name", `a model "${id}" is already in the catalog; delete it first or pass another "name".`);
    throw new RbeeError("INTERNAL", `Cannot copy ${source} into the catalog: ${(err as Error).message}`, { cause: err });
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

