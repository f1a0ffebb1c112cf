import test from "ava";
import { resolveModelSource } from "../../daemons/hive/model-source.js";
import { RbeeError } from "../../shared/errors.js";

function refused(t: import("ava").ExecutionContext, model: string, name: string | undefined, field: "model" | "name"): string {
  const err = t.throws(() => resolveModelSource(model, name), { instanceOf: RbeeError });
  t.is((err as RbeeError).code, "INVALID_REQUEST");
  t.true(err?.message.startsWith(`${field}: `), err?.message);
  return err?.message ?? "";
}

test("https and http URLs are taken as they are; the id is the last segment, lowercased, without .gguf", (t) => {
  const a = resolveModelSource("https://example.com/models/Llama-3.2-1B-Instruct-Q4_K_M.gguf?download=true");
  t.is(a.url.href, "https://example.com/models/Llama-3.2-1B-Instruct-Q4_K_M.gguf?download=true");
  t.is(a.id, "llama-3.2-1b-instruct-q4_k_m");
  const b = resolveModelSource("http://127.0.0.1:8080/x/TINY.GGUF");
  t.is(b.url.host, "127.0.0.1:8080");
  t.is(b.id, "tiny");
  t.is(resolveModelSource("https://example.com/files/model-v2").id, "model-v2");
});

test("name replaces the id taken from the URL", (t) => {
  const s = resolveModelSource("https://example.com/a/Whatever%20Name.gguf", "my-model");
  t.is(s.id, "my-model");
  t.is(s.url.pathname, "/a/Whatever%20Name.gguf");
});

test("hf:<owner>/<repo>/<file>.gguf resolves to the hub's resolve/main URL", (t) => {
  const s = resolveModelSource("hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf");
  t.is(s.url.href, "https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/Llama-3.2-1B-Instruct-Q4_K_M.gguf");
  t.is(s.id, "llama-3.2-1b-instruct-q4_k_m");
  const nested = resolveModelSource("hf:owner/repo/sub dir/Model.Q8_0.gguf");
  t.is(nested.url.href, "https://huggingface.co/owner/repo/resolve/main/sub%20dir/Model.Q8_0.gguf");
  t.is(nested.id, "model.q8_0");
});

test("other schemes, credentials and non-URLs are refused naming model", (t) => {
  t.regex(refused(t, "file:///etc/passwd", undefined, "model"), /model_import/);
  refused(t, "ftp://example.com/model.gguf", undefined, "model");
  refused(t, "javascript:alert(1)", undefined, "model");
  refused(t, "data:application/octet-stream;base64,R0dVRg==", undefined, "model");
  refused(t, "/etc/passwd", undefined, "model");
  refused(t, "../x", undefined, "model");
  refused(t, "model.gguf", undefined, "model");
  const secret = refused(t, "https://user:hunter2@example.com/model.gguf", undefined, "model");
  t.false(secret.includes("hunter2"), "the password is never echoed");
  refused(t, "https://token@example.com/model.gguf", undefined, "model");
});

test("bad hf specs are refused naming model", (t) => {
  for (const bad of [
    "hf:",
    "hf:owner",
    "hf:owner/repo",
    "hf:owner/repo/",
    "hf:owner/repo/model.bin",
    "hf:owner/repo/../secrets/model.gguf",
    "hf:owner/repo/./model.gguf",
    "hf:owner//model.gguf",
    "hf:-owner/repo/model.gguf",
    "hf:owner/re po/model.gguf",
    "hf:owner/repo/model.gguf?x=1#.gguf",
    "hf:owner/repo/a%2F..%2Fb.gguf",
  ]) {
    t.regex(refused(t, bad, undefined, "model"), /hf:<owner>\/<repo>\/<file>\.gguf/, bad);
  }
});

test("an id that cannot be made from the URL asks for name; a bad name is refused naming name", (t) => {
  t.regex(refused(t, "https://example.com/", undefined, "name"), /pass "name"/);
  t.regex(refused(t, "https://example.com/models/My%20Model.gguf", undefined, "name"), /pass "name"/);
  t.regex(refused(t, "https://example.com/models/..gguf", undefined, "name"), /pass "name"/);
  refused(t, "https://example.com/m.gguf", "../x", "name");
  refused(t, "https://example.com/m.gguf", "Caps", "name");
  refused(t, "https://example.com/m.gguf", "", "name");
  refused(t, "https://example.com/m.gguf", "a/b", "name");
});
