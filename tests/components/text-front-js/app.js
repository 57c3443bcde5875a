// An HTTP front (componentize-js) calling wasmfleet:demo/text@0.1.0, which another component of
// its workload exports (text-lib-py, componentize-py). Paths:
//   /transform?s=S   the library's transform(S)
//   /summarize       POST body -> the library's summarize(body) as JSON {length, checksum, words}
//   /cross?n=N       N calls of rotate(s, 1) across the component boundary (s = "abcdefgh")
//   /inside?n=N      one call of rotate(s, N): the same work, done inside the library
//   /local?n=N       the same rotations done here, in JavaScript
//   /                "front" (no call)
import { transform, summarize, rotate } from "wasmfleet:demo/text@0.1.0";

function count(url) {
  return Number(url.searchParams.get("n") || "1");
}

function rotateHere(s, n) {
  for (let i = 0; i < n; i++) s = s.slice(1) + s.slice(0, 1);
  return s;
}

async function handle(request) {
  const url = new URL(request.url);
  const path = url.pathname;
  if (path === "/transform") {
    return new Response(transform(url.searchParams.get("s") || ""));
  }
  if (path === "/summarize") {
    const body = new Uint8Array(await request.arrayBuffer());
    const s = summarize(body);
    return new Response(JSON.stringify({ length: s.length, checksum: s.checksum, words: s.words }), {
      headers: { "content-type": "application/json" },
    });
  }
  if (path === "/cross") {
    let s = "abcdefgh";
    for (let i = 0, n = count(url); i < n; i++) s = rotate(s, 1);
    return new Response(s);
  }
  if (path === "/inside") {
    return new Response(rotate("abcdefgh", count(url)));
  }
  if (path === "/local") {
    return new Response(rotateHere("abcdefgh", count(url)));
  }
  return new Response("front\n");
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
