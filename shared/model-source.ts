import { invalid } from "./errors.js";
import { isModelId } from "./protocol.js";

/** Where a model_download fetches from, and the catalog id it will have. */
export interface ModelSource {
  url: URL;
  id: string;
}

const HF_BASE = "https://huggingface.co";
// Hugging Face owner and repository names: letters, digits, '.', '_', '-', not starting with a symbol.
const HF_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const SOURCE_HELP = 'give an https:// or http:// URL of a .gguf file, or hf:<owner>/<repo>/<file>.gguf';
const ID_HELP = "lowercase letters, digits, '.', '_', '-', at most 128, no '..'";

/** A user's text quoted in a message, cut short so a huge field does not flood logs. */
const quote = (s: string): string => JSON.stringify(s.length > 120 ? `${s.slice(0, 120)}...` : s);

/**
 * Resolves a model_download `model` field (http(s) URL or `hf:<owner>/<repo>/<path>.gguf`) and its catalog id
 * (`name`, or the last URL segment lowercased without `.gguf`). Throws INVALID_REQUEST naming the field at fault.
 */
export function resolveModelSource(model: string, name?: string): ModelSource {
  const url = model.startsWith("hf:") ? huggingFaceUrl(model) : httpUrl(model);
  return { url, id: name !== undefined ? checkedName(name) : idFromUrl(url) };
}

function httpUrl(model: string): URL {
  let url: URL;
  try {
    url = new URL(model);
  } catch {
    throw invalid("model", `${quote(model)} is not a URL; ${SOURCE_HELP}.`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    const hint = url.protocol === "file:" ? " (use model_import for a file already on the hive's machine)" : "";
    throw invalid("model", `the scheme "${url.protocol}" is not a download source; ${SOURCE_HELP}${hint}.`);
  }
  // The URL is not echoed here: it holds a secret.
  if (url.username !== "" || url.password !== "") {
    throw invalid("model", "the URL holds a user name or password; rbee does not send credentials written in URLs.");
  }
  if (url.hostname === "") throw invalid("model", `${quote(model)} has no host; ${SOURCE_HELP}.`);
  return url;
}

function huggingFaceUrl(model: string): URL {
  const spec = model.slice("hf:".length);
  const bad = (why: string) => invalid("model", `${quote(model)} is not a Hugging Face file: ${why}; write hf:<owner>/<repo>/<file>.gguf.`);
  const parts = spec.split("/");
  const [owner, repo, ...file] = parts;
  if (owner === undefined || repo === undefined || file.length === 0) throw bad("it needs an owner, a repository and a file");
  if (!HF_NAME.test(owner)) throw bad(`the owner ${quote(owner)} is not a valid name`);
  if (!HF_NAME.test(repo)) throw bad(`the repository ${quote(repo)} is not a valid name`);
  for (const segment of file) {
    // '?', '#', '%' and control characters would change the URL's meaning rather than name a file
    if (segment === "" || segment === "." || segment === ".." || /[?#%\\\u0000-\u001f\u007f]/.test(segment)) {
      throw bad(`the file path ${quote(file.join("/"))} is not a plain path`);
    }
  }
  if (!(file.at(-1) ?? "").toLowerCase().endsWith(".gguf")) throw bad("the file must end in .gguf");
  const path = [owner, repo, "resolve", "main", ...file].map(encodeURIComponent).join("/");
  return new URL(`${HF_BASE}/${path}`);
}

function checkedName(name: string): string {
  if (!isModelId(name)) throw invalid("name", `${quote(name)} is not a model id (${ID_HELP}).`);
  return name;
}

function idFromUrl(url: URL): string {
  const last = url.pathname.split("/").at(-1) ?? "";
  let segment: string;
  try {
    segment = decodeURIComponent(last);
  } catch {
    segment = last;
  }
  const id = segment.toLowerCase().replace(/\.gguf$/, "");
  if (!isModelId(id)) {
    const from = segment === "" ? "The URL ends without a file name" : `The file name ${quote(segment)} does not make a model id (${ID_HELP})`;
    throw invalid("name", `${from}; pass "name" to choose the model's id.`);
  }
  return id;
}

/** Checked at POST, before any job exists: a model_download whose source or id is bad is a 400 naming the field. */
export function checkDownloadSource(op: { operation: string; model?: unknown; name?: unknown }): void {
  if (op.operation !== "model_download" || typeof op.model !== "string") return;
  resolveModelSource(op.model, typeof op.name === "string" ? op.name : undefined);
}
