// A wasi:http guest in JavaScript (componentize-js) calling every function of wasi:keyvalue
// 0.2.0-draft, with the same paths and JSON answers as ../keyvalue-py/app.py, so the same tests
// drive both: {"ok": result} or {"error": case, "detail": text}; values travel as hex.
import { open } from "wasi:keyvalue/store@0.2.0-draft";
import { increment } from "wasi:keyvalue/atomics@0.2.0-draft";
import { getMany, setMany, deleteMany } from "wasi:keyvalue/batch@0.2.0-draft";

const encoder = new TextEncoder();
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

function pattern(size) {
  const value = new Uint8Array(size);
  for (let i = 0; i < size; i++) value[i] = i % 251;
  return value;
}

function run(path, q) {
  const bucket = open(q.get("id") ?? "");
  if (path === "/open") return "opened";
  if (path === "/get") {
    const value = bucket.get(q.get("key"));
    return value === undefined ? null : hex(value);
  }
  if (path === "/set") {
    bucket.set(q.get("key"), encoder.encode(q.get("value") ?? ""));
    return null;
  }
  if (path === "/delete") {
    bucket.delete(q.get("key"));
    return null;
  }
  if (path === "/exists") return bucket.exists(q.get("key"));
  if (path === "/list") {
    const cursor = q.get("cursor") ? BigInt(q.get("cursor")) : undefined;
    const page = bucket.listKeys(cursor);
    return { keys: page.keys, cursor: page.cursor === undefined ? null : Number(page.cursor) };
  }
  if (path === "/incr") return Number(increment(bucket, q.get("key"), BigInt(q.get("delta") ?? "1")));
  if (path === "/get-many") {
    return getMany(bucket, q.get("keys").split(",")).map((item) =>
      item === undefined ? null : [item[0], hex(item[1])]);
  }
  if (path === "/set-many") {
    setMany(bucket, q.get("pairs").split(",").map((p) => {
      const at = p.indexOf("=");
      return [p.slice(0, at), encoder.encode(p.slice(at + 1))];
    }));
    return null;
  }
  if (path === "/delete-many") {
    deleteMany(bucket, q.get("keys").split(","));
    return null;
  }
  if (path === "/fill") {
    const n = Number(q.get("n"));
    const pairs = [];
    for (let i = 0; i < n; i++) pairs.push([`${q.get("prefix")}${String(i).padStart(5, "0")}`, encoder.encode(String(i))]);
    setMany(bucket, pairs);
    return n;
  }
  if (path === "/set-large") {
    const size = Number(q.get("size"));
    bucket.set(q.get("key"), pattern(size));
    return size;
  }
  if (path === "/check-large") {
    const value = bucket.get(q.get("key"));
    if (value === undefined) return null;
    const expected = pattern(value.length);
    let same = true;
    for (let i = 0; i < value.length; i++) if (value[i] !== expected[i]) { same = false; break; }
    return { size: value.length, pattern: same };
  }
  throw new Error(`unknown path ${path}`);
}

function answer(request) {
  const url = new URL(request.url);
  try {
    return { ok: run(url.pathname, url.searchParams) };
  } catch (e) {
    // A WIT error arrives as an exception whose payload is the `error` variant.
    const payload = e && e.payload;
    if (payload && typeof payload.tag === "string") {
      return { error: payload.tag, detail: payload.val === undefined ? null : payload.val };
    }
    throw e;
  }
}

addEventListener("fetch", (event) =>
  event.respondWith(new Response(JSON.stringify(answer(event.request)), {
    headers: { "content-type": "application/json" },
  })));
