// A wasi:http guest in JavaScript (componentize-js / StarlingMonkey fetch events), used by the
// runtime's tests and benchmarks. Paths as in ../hello-py/app.py.
let count = 0;

async function handle(request) {
  const url = new URL(request.url);
  const path = url.pathname;
  if (path.startsWith("/trap")) {
    throw new Error("guest trap requested");
  }
  if (path.startsWith("/loop")) {
    for (;;) {}
  }
  if (path.startsWith("/bomb")) {
    const hoard = [];
    for (;;) hoard.push(new Uint8Array(8 << 20).fill(1));
  }
  if (path.startsWith("/status")) {
    return new Response("", { status: 201, headers: { "x-status": "created" } });
  }
  if (path.startsWith("/headers")) {
    const headers = {};
    for (const [k, v] of request.headers) headers[k] = v;
    return new Response("", { status: 200, headers });
  }
  if (path.startsWith("/echo")) {
    const body = await request.arrayBuffer();
    return new Response(body, { headers: { "content-type": "application/octet-stream" } });
  }
  if (path.startsWith("/count")) {
    count += 1;
    return new Response(String(count));
  }
  if (path.startsWith("/fetch")) {
    const target = url.search.split("url=")[1];
    try {
      const r = await fetch(target);
      return new Response(`${r.status} ${await r.text()}`);
    } catch (e) {
      return new Response(`fetch failed: ${e}`, { status: 502 });
    }
  }
  return new Response("hello from javascript\n", {
    headers: { "content-type": "text/plain", "x-guest": "javascript" },
  });
}

addEventListener("fetch", (event) => event.respondWith(handle(event.request)));
