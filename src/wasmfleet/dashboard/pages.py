"""HTML of each page, from the views: escaped text, plain tables, no client-side templating.

Every page is a shell (header, navigation) around `<div id="live">`, the part the server re-renders and
pushes over Server-Sent Events when a watched object changes. The per-workload page adds charts and log
lines outside it, which the page's script fills from their own SSE events.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from wasmfleet.dashboard import views

DELETING = '<span class="badge warn">Deleting</span>'
NAV = (("/", "Overview"), ("/deployments", "Deployments"), ("/workloads", "Workloads"),
       ("/placement", "Placement"), ("/events", "Events"))


def e(value: object) -> str:
    return escape(str(value), quote=True)


def shell(title: str, path: str, live: str, *, extra: str = "", viewer: str = "") -> str:
    here = path.split("?", 1)[0]
    links = "".join(
        f'<li><a href="{href}"{" aria-current=page" if href == here else ""}>{label}</a></li>' for href, label in NAV)
    who = f'<span class="viewer">{e(viewer)}</span>' if viewer else ""
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · wasmfleet</title>"
        '<link rel=stylesheet href="/static/dashboard.css"><script src="/static/dashboard.js" defer></script>'
        "</head><body>"
        '<header><a class=brand href="/">wasmfleet</a>'
        f'<nav aria-label="Pages"><ul>{links}</ul></nav>'
        f'<span id=conn role=status aria-live=polite data-state=connecting>connecting…</span>{who}</header>'
        f'<main data-page="{e(path)}"><h1>{e(title)}</h1>'
        f'<div id=live aria-live=off>{live}</div>{extra}</main></body></html>\n'
    )


def badge(ok: bool, yes: str = "Ready", no: str = "Not ready") -> str:
    return f'<span class="badge {"ok" if ok else "bad"}">{yes if ok else no}</span>'


def _percent(value: float | None) -> str:
    if value is None:
        return '<span class="muted">-</span>'
    width = max(0.0, min(100.0, value))
    return (f'<span class=meter aria-hidden=true><span style="width:{width:.0f}%"></span></span>'
            f" {value:.0f}%")


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def _table(caption: str, head: Iterable[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{e(empty)}</p>'
    cols = "".join(f"<th scope=col>{e(h)}</th>" for h in head)
    return (f"<table><caption>{e(caption)}</caption><thead><tr>{cols}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def workload_link(namespace: str, name: str) -> str:
    return f'<a href="/workloads/{e(namespace)}/{e(name)}">{e(name)}</a>'


# ---------------------------------------------------------------------------------------------- pages


def overview(hosts: list[views.HostRow], workloads: list[views.WorkloadRow],
             deployments: list[views.DeploymentRow]) -> str:
    ready_hosts = sum(h.ready for h in hosts)
    live_workloads = [w for w in workloads if not w.deleting]
    ready_workloads = sum(w.ready for w in live_workloads)
    settled = sum(not d.rollout for d in deployments)
    parts = [
        '<ul class=summary aria-label="Fleet summary">',
        f'<li><strong data-count=hosts>{len(hosts)}</strong> hosts, {ready_hosts} ready</li>',
        f'<li><strong data-count=workloads>{len(live_workloads)}</strong> workloads, {ready_workloads} ready</li>',
        f'<li><strong data-count=deployments>{len(deployments)}</strong> deployments, {settled} settled</li>',
        "</ul>",
    ]
    for group, rows in views.by_group(hosts).items():
        body = [
            f'<tr data-host="{e(h.name)}" data-ready="{str(h.ready).lower()}"><th scope=row>{e(h.name)}'
            f'<div class=sub>{e(h.host_id)}</div></th><td title="{e(h.ready_message)}">{badge(h.ready)}</td>'
            f"<td>{_percent(h.cpu_percent)}</td>"
            f'<td>{_percent(h.memory_percent)} <span class=sub>{_bytes(h.memory_used)} of {_bytes(h.memory_total)}'
            f"</span></td><td>{h.ready_workloads} / {h.workloads}</td><td>{e(h.last_seen)}</td></tr>"
            for h in rows
        ]
        parts.append(f'<section aria-labelledby="g-{e(group)}"><h2 id="g-{e(group)}">Group {e(group)}</h2>')
        parts.append(_table(f"Hosts in group {group}", ("Host", "State", "CPU", "Memory", "Workloads ready / placed",
                                                        "Last heartbeat"), body, "no hosts"))
        parts.append("</section>")
    if not hosts:
        parts.append('<p class="empty">No hosts have reported yet.</p>')
    return "".join(parts)


def _conditions(conds: list[views.Condition], *, messages: bool = True) -> str:
    items = []
    for c in conds:
        state = {"True": "ok", "False": "bad"}.get(c.status, "unknown")
        text = f' <span class=msg>{e(c.message or c.reason)}</span>' if messages and c.status != "True" and (
            c.message or c.reason) else ""
        title = f' title="{e(c.reason)}: {e(c.message)}"' if c.reason or c.message else ""
        items.append(f'<li><span class="chip {state}"{title}>{e(c.type)}={e(c.status)}</span>{text}</li>')
    return f"<ul class=conds>{''.join(items)}</ul>" if items else '<span class="muted">none yet</span>'


def deployments(rows: list[views.DeploymentRow]) -> str:
    body = [
        f'<tr data-deployment="{e(d.name)}"><th scope=row>{e(d.name)}<div class=sub>{e(d.namespace)}</div></th>'
        f"<td>{d.desired}</td><td>{d.current}</td><td data-ready-count>{d.ready}</td><td>{d.unavailable}</td>"
        f"<td>{e(d.rollout) or badge(True, 'Settled')}</td><td>{_conditions(d.conditions)}</td></tr>"
        for d in rows
    ]
    return _table("WorkloadDeployments", ("Deployment", "Replicas", "Current", "Ready", "Unavailable",
                                          "Rollout", "Conditions"), body, "No deployments.")


def _components(components: list[views.Component]) -> str:
    items = [f"<li><strong>{e(c.name)}</strong> <code>{e(c.image)}</code>"
             + (f' <span class=sub>{e(c.role)} {e(c.state)}</span>' if c.role or c.state else "") + "</li>"
             for c in components]
    return f"<ul class=plain>{''.join(items)}</ul>"


def _interfaces(interfaces: list[str]) -> str:
    return "<ul class=plain>" + "".join(f"<li><code>{e(i)}</code></li>" for i in interfaces) + "</ul>"


PAGE_SIZE = 200
"""Workloads per page of the workloads list: with a thousand, one page would be ~0.7 MB of HTML to send on
every change and to lay out in the browser; 200 keep a page and its live updates well under a second."""


def pager(number: int, total: int) -> str:
    pages = max(1, -(-total // PAGE_SIZE))
    if pages == 1:
        return ""
    links = "".join(f'<li><a href="/workloads?page={n}"{" aria-current=page" if n == number else ""}>{n}</a></li>'
                    for n in range(1, pages + 1))
    return f'<nav class=pager aria-label="Workload pages"><ul>{links}</ul></nav>'


def workloads(all_rows: list[views.WorkloadRow], number: int = 1) -> str:
    rows = all_rows[(number - 1) * PAGE_SIZE:number * PAGE_SIZE]
    first = (number - 1) * PAGE_SIZE + 1
    shown = f"{first}-{first + len(rows) - 1} of {len(all_rows)}" if len(rows) < len(all_rows) else str(len(rows))
    body = [
        f'<tr data-workload="{e(w.name)}" data-ready="{str(w.ready).lower()}" data-host="{e(w.host_name)}">'
        f"<th scope=row>{workload_link(w.namespace, w.name)}<div class=sub>{e(w.namespace)}"
        f"{' · ' + e(w.deployment) if w.deployment else ''}</div></th>"
        f"<td>{e(w.host_name) or '<span class=muted>unplaced</span>'}</td>"
        f"<td>{DELETING if w.deleting else badge(w.ready)}</td>"
        f"<td>{_conditions(w.conditions)}</td><td>{_components(w.components)}</td>"
        f"<td>{_interfaces(w.interfaces)}</td></tr>"
        for w in rows
    ]
    return pager(number, len(all_rows)) + _table(
        f"Workloads ({shown})", ("Workload", "Host", "State", "Conditions", "Components", "Interfaces"), body,
        "No workloads." if not all_rows else "No workloads on this page.")


def events(rows: list[views.EventRow]) -> str:
    body = [
        f'<tr class="{"warn" if ev.type == "Warning" else ""}"><td><time>{e(ev.time)}</time></td>'
        f"<td>{e(ev.type)}</td><td>{e(ev.reason)}</td><td>{e(ev.object)}</td><td>{e(ev.message)}</td>"
        f"<td>{ev.count}</td></tr>"
        for ev in rows
    ]
    return _table("Events, newest first", ("Time", "Type", "Reason", "Object", "Message", "Count"), body,
                  "No events.")


def placement(p: views.Placement) -> str:
    if not p.hosts:
        return '<p class="empty">No hosts have reported yet.</p>'
    head = "".join(f'<th scope=col>{e(c)}</th>' for c in p.columns)
    rows = []
    most = max((p.count(x.host_id, c) for x in p.hosts for c in p.columns), default=0)
    for h in p.hosts:
        cells = []
        for c in p.columns:
            names = p.cells.get((h.host_id, c), [])
            counts = [p.count(x.host_id, c) for x in p.hosts if x.ready]
            hot = bool(counts) and len(names) > min(counts) + 1  # more than one above the emptiest host
            level = 0 if not most else round(4 * len(names) / most)
            cells.append(f'<td class="cell l{level}{" hot" if hot else ""}" data-cell="{e(h.name)}|{e(c)}" '
                         f'title="{e(", ".join(names)) or "none"}">{len(names) or ""}'
                         f'{"<span class=sr> replicas (unbalanced)</span>" if hot else ""}</td>')
        total = sum(p.count(h.host_id, c) for c in p.columns)
        rows.append(f'<tr><th scope=row>{e(h.name)} {badge(h.ready)}<div class=sub>group {e(h.group)}</div></th>'
                    f"{''.join(cells)}<td>{total}</td></tr>")
    if p.unplaced:
        unplaced_cells = "".join(f'<td class="cell" title="{e(", ".join(p.unplaced.get(c, [])))}">'
                        f'{len(p.unplaced.get(c, [])) or ""}</td>' for c in p.columns)
        waiting = sum(map(len, p.unplaced.values()))
        rows.append(f"<tr><th scope=row>unplaced</th>{unplaced_cells}<td>{waiting}</td></tr>")
    return (f"<table class=grid><caption>Replicas per host (rows) and deployment (columns); a highlighted cell "
            f"holds more than one replica above the emptiest Ready host</caption><thead><tr><th scope=col>Host</th>"
            f"{head}<th scope=col>Total</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


def workload_detail(w: views.WorkloadRow | None, namespace: str, name: str) -> str:
    if w is None:
        return f'<p class="empty">Workload {e(namespace)}/{e(name)} does not exist (or no longer).</p>'
    conds = "".join(
        f"<tr><th scope=row>{e(c.type)}</th><td>{badge(c.status == 'True', c.status, c.status)}</td>"
        f"<td>{e(c.reason)}</td><td>{e(c.message)}</td></tr>" for c in w.conditions)
    return (
        f'<dl class=props data-ready="{str(w.ready).lower()}"><dt>State</dt><dd>{badge(w.ready)}</dd>'
        f"<dt>Host</dt><dd data-host>{e(w.host_name or 'unplaced')} <span class=sub>{e(w.host_id)}</span></dd>"
        f"<dt>Deployment</dt><dd>{e(w.deployment or '-')}</dd>"
        f"<dt>Routes</dt><dd>{e(', '.join(w.routes) or '-')}</dd><dt>UID</dt><dd>{e(w.uid)}</dd></dl>"
        f"<h2>Conditions</h2>"
        + (_table("Conditions", ("Type", "Status", "Reason", "Message"), [conds] if conds else [], "none yet"))
        + f"<h2>Components</h2>{_components(w.components)}<h2>Interfaces</h2>{_interfaces(w.interfaces)}"
    )


def workload_extras() -> str:
    """Charts and log lines of the per-workload page, filled by the page's script from SSE."""
    charts = "".join(
        f'<figure class=chart data-series="{key}" data-source="{source}"><figcaption>{label}</figcaption>'
        f'<svg role=img aria-label="{label}" viewBox="0 0 300 80" preserveAspectRatio=none></svg>'
        f"<output>-</output></figure>"
        for key, source, label in (("rps", "route", "Requests / s"), ("err", "route", "Errors / s (5xx, traps)"),
                                   ("p50", "route", "p50 latency (ms)"), ("p99", "route", "p99 latency (ms)"),
                                   ("rps", "replica", "This replica: requests / s (its host)")))
    return (f'<section aria-labelledby=traffic><h2 id=traffic>Traffic</h2><div class=charts>{charts}</div>'
            f'<p class=sub id=metrics-note></p></section>'
            '<section aria-labelledby=logs-h><h2 id=logs-h>Recent log lines</h2>'
            '<pre id=logs tabindex=0 aria-label="Recent log lines">loading…</pre></section>')
