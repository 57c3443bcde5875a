"""`wasmfleet apply / get / describe / delete`: kubectl's everyday verbs, against the fleet's API server.

The API server is the one named by --kubeconfig, else $KUBECONFIG, else the DATA_DIR/kubeconfig that
`wasmfleet up` wrote (DATA_DIR defaults to .wasmfleet). kubectl with the same kubeconfig works the same;
these exist so a newcomer needs nothing but wasmfleet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from wasmfleet.cli import resources_api as rapi

T = TypeVar("T")


def kubeconfig_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Kubeconfig of the API server (default: $KUBECONFIG, else DATA_DIR/kubeconfig).",
    )(click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".wasmfleet"),
                   show_default=True, help="The `wasmfleet up` data dir whose kubeconfig to use.")(fn))


def namespace_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-n", "--namespace", default=None, help="Namespace (default: the object's, else default).")(fn)


def kubeconfig_path(kubeconfig: Path | None, data_dir: Path) -> Path:
    if kubeconfig is not None:
        return kubeconfig
    env = os.environ.get("KUBECONFIG")
    if env:
        return Path(env.split(os.pathsep)[0])
    return data_dir / "kubeconfig"


def _run(kubeconfig: Path, work: Callable[[rapi.Api], Awaitable[T]]) -> T:
    async def main() -> T:
        api = await rapi.Api.connect(kubeconfig)
        try:
            return await work(api)
        finally:
            await api.close()

    try:
        return asyncio.run(main())
    except rapi.ApiError as exc:
        raise click.ClickException(str(exc)) from None


def age(timestamp: str | None) -> str:
    """kubectl-style age: 42s, 5m, 3h, 2d."""
    if not timestamp:
        return "<unknown>"
    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    secs = max(0, int((dt.datetime.now(dt.UTC) - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size * (2 if unit != "m" else 1):
            return f"{secs // size}{unit}"
    return f"{secs}s"


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


# ----------------------------------------------------------------------------------------------- apply


@click.command("apply")
@click.option("-f", "--filename", "paths", multiple=True, required=True, metavar="PATH",
              help="Manifest file, folder of manifests, or - for stdin; repeatable.")
@namespace_option
@kubeconfig_option
def apply(paths: tuple[str, ...], namespace: str | None, kubeconfig: Path | None, data_dir: Path) -> None:
    """Create or update objects from manifests (server-side apply, as `kubectl apply --server-side`).

    \b
    Example:
      wasmfleet apply -f examples/hello/deployment.yaml
    """
    try:
        docs = rapi.load_manifests(paths, sys.stdin.read() if "-" in paths else None)
    except rapi.ApiError as exc:
        raise click.ClickException(str(exc)) from None

    async def work(api: rapi.Api) -> None:
        await apply_documents(api, docs, namespace, click.echo)

    _run(kubeconfig_path(kubeconfig, data_dir), work)


async def apply_documents(
    api: rapi.Api, docs: list[tuple[str, rapi.Obj]], namespace: str | None, echo: Callable[[str], Any]
) -> None:
    """Server-side apply each document; echo `<type>/<name> created|configured|unchanged`."""
    catalog = await api.catalog()
    for source, obj in docs:
        rt = catalog.for_object(obj)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise rapi.ApiError(f"{source}: {obj['kind']} without metadata.name")
        ns = (namespace or meta.get("namespace") or "default") if rt.namespaced else None
        if ns:
            meta["namespace"] = ns
        status, before = await api.request("GET", rt.path(ns, name))
        try:
            after = await api.call(
                "PATCH", rt.path(ns, name), body=obj, content_type="application/apply-patch+yaml",
                query=[("fieldManager", rapi.FIELD_MANAGER), ("force", "true")],
            )
        except rapi.ApiError as exc:
            raise rapi.ApiError(f"{source}: {rt.qualified}/{name}: {exc}", exc.status) from None
        if status == 404:
            verb = "created"
        else:
            old_rv = (before.get("metadata") or {}).get("resourceVersion")
            verb = "unchanged" if old_rv == after["metadata"].get("resourceVersion") else "configured"
        echo(f"{rt.qualified}/{name} {verb}")


# ------------------------------------------------------------------------------------------------- get


@click.command("get")
@click.argument("kind")
@click.argument("names", nargs=-1)
@namespace_option
@click.option("-A", "--all-namespaces", is_flag=True, help="List across all namespaces.")
@click.option("-l", "--selector", default="", help="Label selector, e.g. hostgroup=default.")
@click.option("-o", "--output", type=click.Choice(["table", "wide", "yaml", "json", "name"]), default="table",
              show_default=True)
@kubeconfig_option
def get(kind: str, names: tuple[str, ...], namespace: str | None, all_namespaces: bool, selector: str,
        output: str, kubeconfig: Path | None, data_dir: Path) -> None:
    """List objects of a kind (hosts, workloads/ww, workloaddeployments/wd, ...), or named ones.

    \b
    Examples:
      wasmfleet get hosts
      wasmfleet get wd hello -o yaml
    """

    async def work(api: rapi.Api) -> None:
        rt = (await api.catalog()).resolve(kind)
        ns = None if all_namespaces or not rt.namespaced else (namespace or "default")
        accept = "application/json" if output in ("yaml", "json", "name") else rapi.TABLE_ACCEPT
        query = [("labelSelector", selector)] if selector else []
        if names:
            bodies = [await api.call("GET", rt.path(ns, n), accept=accept) for n in names]
        else:
            bodies = [await api.call("GET", rt.path(ns), accept=accept, query=query)]
        if output in ("yaml", "json", "name"):
            objs: list[rapi.Obj] = []
            for body in bodies:
                objs += body.get("items", []) if "items" in body else [body]
            for obj in objs:
                obj.setdefault("apiVersion", rt.api_version)
                obj.setdefault("kind", rt.kind)
                (obj.get("metadata") or {}).pop("managedFields", None)
            if output == "name":
                click.echo("\n".join(f"{rt.qualified}/{o['metadata']['name']}" for o in objs))
                return
            shown: Any = objs[0] if names and len(objs) == 1 else {"apiVersion": "v1", "kind": "List", "items": objs}
            click.echo(json.dumps(shown, indent=2) if output == "json" else yaml.safe_dump(shown, sort_keys=False))
            return
        click.echo(_table(bodies, wide=output == "wide", with_namespace=all_namespaces and rt.namespaced,
                          what=rt.plural, ns=ns))

    _run(kubeconfig_path(kubeconfig, data_dir), work)


def _table(bodies: list[rapi.Obj], *, wide: bool, with_namespace: bool, what: str, ns: str | None) -> str:
    header: list[str] = []
    rows: list[list[str]] = []
    for body in bodies:
        if body.get("kind") != "Table":  # a server without table support: names and ages
            items = body.get("items", [body]) if "items" in body else [body]
            header = ["NAME", "AGE"]
            rows += [[i["metadata"]["name"], age(i["metadata"].get("creationTimestamp"))] for i in items]
            continue
        cols = [(i, c) for i, c in enumerate(body.get("columnDefinitions") or []) if wide or not c.get("priority")]
        header = [c["name"].upper() for _, c in cols]
        for row in body.get("rows") or []:
            cells = ["<none>" if row["cells"][i] in (None, "") else str(row["cells"][i]) for i, _ in cols]
            if with_namespace:
                cells.insert(0, ((row.get("object") or {}).get("metadata") or {}).get("namespace", ""))
            rows.append(cells)
    if not rows:
        return f"No {what} found" + (f" in {ns} namespace." if ns else ".")
    if with_namespace:
        header.insert(0, "NAMESPACE")
    return _columns([header, *rows])


# -------------------------------------------------------------------------------------------- describe


@click.command("describe")
@click.argument("kind")
@click.argument("name")
@namespace_option
@kubeconfig_option
def describe(kind: str, name: str, namespace: str | None, kubeconfig: Path | None, data_dir: Path) -> None:
    """Show one object: spec, status, conditions and its recent Events.

    \b
    Example:
      wasmfleet describe wd hello
    """

    async def work(api: rapi.Api) -> None:
        rt = (await api.catalog()).resolve(kind)
        ns = (namespace or "default") if rt.namespaced else None
        obj = await api.call("GET", rt.path(ns, name))
        events: list[rapi.Obj] = []
        ev_status, ev_list = await api.request("GET", f"/api/v1/namespaces/{ns or 'default'}/events")
        if ev_status == 200:
            uid = obj["metadata"].get("uid")
            for ev in ev_list.get("items") or []:
                ref = ev.get("involvedObject") or ev.get("regarding") or {}
                if ref.get("uid") == uid or (ref.get("name") == name and ref.get("kind") == rt.kind):
                    events.append(ev)
        click.echo(render_description(rt, obj, events))

    _run(kubeconfig_path(kubeconfig, data_dir), work)


def render_description(rt: rapi.ResourceType, obj: rapi.Obj, events: list[rapi.Obj]) -> str:
    meta = obj.get("metadata") or {}
    lines = [f"Name:         {meta.get('name')}"]
    if meta.get("namespace"):
        lines.append(f"Namespace:    {meta['namespace']}")
    lines.append(f"Kind:         {rt.kind} ({rt.api_version})")
    labels = meta.get("labels") or {}
    lines.append("Labels:       " + (", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"))
    lines.append(f"Created:      {meta.get('creationTimestamp')} ({age(meta.get('creationTimestamp'))} ago)")
    if meta.get("deletionTimestamp"):
        lines.append(f"Deleting:     since {meta['deletionTimestamp']} (finalizers: {meta.get('finalizers')})")
    owners = meta.get("ownerReferences") or []
    if owners:
        lines.append("Owned by:     " + ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in owners))
    top = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "spec", "status")}
    for title, part in (("Fields", top), ("Spec", obj.get("spec"))):
        if part:
            lines.append(f"{title}:")
            lines += ["  " + ln for ln in yaml.safe_dump(part, sort_keys=False).rstrip().splitlines()]
    status = dict(obj.get("status") or {})
    conditions = status.pop("conditions", None) or []
    if status:
        lines.append("Status:")
        lines += ["  " + ln for ln in yaml.safe_dump(status, sort_keys=False).rstrip().splitlines()]
    if conditions:
        lines.append("Conditions:")
        rows = [["TYPE", "STATUS", "REASON", "AGE", "MESSAGE"]] + [
            [str(c.get("type")), str(c.get("status")), str(c.get("reason") or ""),
             age(c.get("lastTransitionTime")), str(c.get("message") or "")]
            for c in conditions
        ]
        lines += ["  " + ln for ln in _columns(rows).splitlines()]
    lines.append("Events:" + ("" if events else "       <none>"))
    if events:
        def when(ev: rapi.Obj) -> str:
            return str(ev.get("lastTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp"))

        rows = [["AGE", "TYPE", "REASON", "MESSAGE"]] + [
            [age(when(ev)), str(ev.get("type", "")), str(ev.get("reason", "")),
             str(ev.get("message") or ev.get("note", ""))]
            for ev in sorted(events, key=when)[-20:]
        ]
        lines += ["  " + ln for ln in _columns(rows).splitlines()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- delete


@click.command("delete")
@click.argument("kind", required=False)
@click.argument("names", nargs=-1)
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH", help="Delete what these manifests name.")
@namespace_option
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the objects are gone (finalizers done: workloads stopped on their hosts).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait with --wait.")
@kubeconfig_option
def delete(kind: str | None, names: tuple[str, ...], paths: tuple[str, ...], namespace: str | None, wait: bool,
           timeout: float, kubeconfig: Path | None, data_dir: Path) -> None:
    """Delete objects by kind and name, or those in manifests.

    \b
    Examples:
      wasmfleet delete wd hello
      wasmfleet delete -f examples/hello/deployment.yaml
    """
    if not paths and not (kind and names):
        raise click.UsageError("name a kind and object names, or give -f PATH")
    try:
        docs = rapi.load_manifests(paths, sys.stdin.read() if "-" in paths else None) if paths else []
    except rapi.ApiError as exc:
        raise click.ClickException(str(exc)) from None

    async def work(api: rapi.Api) -> None:
        catalog = await api.catalog()
        targets: list[tuple[rapi.ResourceType, str | None, str]] = []
        for _, obj in docs:
            rt = catalog.for_object(obj)
            meta = obj.get("metadata") or {}
            ns = (namespace or meta.get("namespace") or "default") if rt.namespaced else None
            targets.append((rt, ns, str(meta.get("name"))))
        if kind:
            rt = catalog.resolve(kind)
            targets += [(rt, (namespace or "default") if rt.namespaced else None, n) for n in names]
        missing = 0
        for rt, ns, name in targets:
            status, body = await api.request("DELETE", rt.path(ns, name))
            if status == 404:
                click.echo(f'{rt.qualified} "{name}" not found', err=True)
                missing += 1
            elif not 200 <= status < 300:
                raise rapi.ApiError(f"{rt.qualified}/{name}: {body.get('message') or status}", status)
            else:
                click.echo(f'{rt.qualified} "{name}" deleted')
        if wait:
            deadline = time.monotonic() + timeout
            for rt, ns, name in targets:
                while (await api.request("GET", rt.path(ns, name)))[0] != 404:
                    if time.monotonic() > deadline:
                        raise rapi.ApiError(f"{rt.qualified}/{name} still exists after {timeout:g} s "
                                            f"(finalizers pending: see `wasmfleet describe`)")
                    await asyncio.sleep(0.2)
        if missing:
            raise SystemExit(1)

    _run(kubeconfig_path(kubeconfig, data_dir), work)
