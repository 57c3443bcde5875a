// wasmfleet dashboard: keeps the page current from the server's Server-Sent Events. No library, no build.
"use strict";
(function () {
  const main = document.querySelector("main[data-page]");
  const live = document.getElementById("live");
  const conn = document.getElementById("conn");
  if (!main || !live || !window.EventSource) return;

  function status(state, text) {
    conn.dataset.state = state;
    conn.textContent = text;
  }

  const source = new EventSource("/stream?page=" + encodeURIComponent(main.dataset.page));
  source.onopen = () => status("live", "live");
  source.onerror = () => status("down", "reconnecting…");
  source.addEventListener("live", (ev) => {
    live.innerHTML = ev.data;  // server-rendered, escaped HTML of this page's live part
    status("live", "live · " + new Date().toLocaleTimeString());
  });

  const logs = document.getElementById("logs");
  source.addEventListener("logs", (ev) => {
    if (!logs) return;
    const data = JSON.parse(ev.data);
    const atBottom = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
    logs.textContent = data.error ? "(" + data.error + ")" : (data.lines.join("\n") || "(no lines yet)");
    if (atBottom) logs.scrollTop = logs.scrollHeight;
  });

  source.addEventListener("metrics", (ev) => {
    const data = JSON.parse(ev.data);
    const note = document.getElementById("metrics-note");
    const failing = data.targets.filter((t) => t.error);
    let text = data.targets.length ? "" : "No metrics endpoints configured (--metrics-url).";
    if (data.routes.length && data.gateway.length) text = "Gateway route " + data.routes.join(", ") + " (all replicas).";
    else if (data.host.length) text = "This replica, from its host (hosts keep no latency figures).";
    if (failing.length) text += " Scrape failing: " + failing.map((t) => t.url + ": " + t.error).join("; ");
    if (note) note.textContent = text;
    for (const fig of document.querySelectorAll("figure[data-series]")) {
      const key = fig.dataset.series;
      // Route charts: the gateway's figures (all replicas), else this replica's host figures (no latency).
      const useGateway = fig.dataset.source !== "replica" && (data.gateway.length > 0 || key === "p50" || key === "p99");
      fig.hidden = fig.dataset.source === "replica" && data.host.length === 0;
      draw(fig, (useGateway ? data.gateway : data.host).slice(-60), key);
    }
  });

  function draw(fig, points, key) {
    const svg = fig.querySelector("svg");
    const out = fig.querySelector("output");
    const vals = points.map((p) => (p[key] === null ? 0 : p[key]));
    const peak = Math.max(0, ...vals);
    fig.dataset.peak = String(peak);
    fig.dataset.points = String(points.length);
    const last = points.length ? points[points.length - 1][key] : null;
    out.textContent = last === null || last === undefined ? "–" : (Math.round(last * 100) / 100).toString();
    const W = 300, H = 80, t0 = points.length ? points[0].t : 0, span = points.length > 1 ? points[points.length - 1].t - t0 : 1;
    const xy = vals.map((v, i) => [((points[i].t - t0) / (span || 1)) * W, H - 3 - (peak ? (v / peak) * (H - 10) : 0)]);
    const line = xy.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" ");
    const ns = "http://www.w3.org/2000/svg";
    svg.replaceChildren();
    if (xy.length > 1) {
      const area = document.createElementNS(ns, "polygon");
      area.setAttribute("points", "0," + H + " " + line + " " + W + "," + H);
      area.setAttribute("class", "area");
      const poly = document.createElementNS(ns, "polyline");
      poly.setAttribute("points", line);
      poly.setAttribute("class", "line");
      svg.append(area, poly);
    }
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", "4");
    label.setAttribute("y", "12");
    label.textContent = "max " + (Math.round(peak * 100) / 100);
    svg.append(label);
  }
})();
