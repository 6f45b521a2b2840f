"""HTML of the lineage views: each record's graph as an inline SVG, then a table of every node.

Drawn on the server, without script or external resources, so the page works offline and inside
the Airflow UI's sandboxed iframe. Columns go upstream to downstream (source commits on the left,
model versions on the right); the inputs of a join/cross/union are separate rows feeding one node.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any
from urllib.parse import urlencode

FAILED_STATES = ("JOB_FAILURE", "JOB_KILLED", "JOB_UNRUNNABLE")
NODE_W, NODE_H, COL_W, ROW_H, PAD = 200, 92, 232, 112, 16

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#1a202c;background:#fff}
h1{font-size:20px;margin:0 0 12px} h2{font-size:16px;margin:20px 0 8px}
.err{background:#fff5f5;border:1px solid #e53e3e;color:#9b2c2c;padding:8px 12px;border-radius:4px}
.ok{background:#f0fff4;border:1px solid #38a169;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;font-size:13px;margin:8px 0;width:100%}
td,th{border:1px solid #e2e8f0;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f7fafc} code{font-size:12px} .muted{color:#718096}
form.lookup input{margin:0 8px 6px 2px;padding:3px} svg{max-width:100%;height:auto;display:block}
.node rect{fill:#f7fafc;stroke:#4a5568;stroke-width:1.2} .node.failed rect{fill:#fff5f5;stroke:#e53e3e;stroke-width:2.5}
.node.mlflow_run rect{fill:#ebf8ff;stroke:#3182ce} .node.model_version rect{fill:#faf5ff;stroke:#805ad5}
.node text{font-size:12px;fill:#1a202c} .node text.t{font-weight:600;font-size:13px} .node text.bad{fill:#c53030}
.edge{fill:none;stroke:#718096;stroke-width:1.4}
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>"
    )


def error_box(message: str) -> str:
    return f"<p class='err' role='alert'>{escape(message)}</p>"


def lookup_form(action: str, values: dict[str, str]) -> str:
    def field(name: str, label: str, size: int) -> str:
        return f"<label>{label} <input name='{name}' size='{size}' value='{escape(values.get(name) or '')}'></label>"

    return (
        f"<form class='lookup' method='get' action='{escape(action)}'>"
        f"{field('run_id', 'MLflow run id', 34)} or "
        f"{field('model', 'model', 16)}{field('version', 'version', 4)}{field('alias', 'or alias', 10)} or "
        f"{field('commit', 'project/repo@commit', 44)}"
        "<button type='submit'>Show lineage</button></form>"
    )


# -- graph ---------------------------------------------------------------------------------------
def layout(graph: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(column, row) of every node: column = longest path from a source, rows in graph order."""
    nodes = [n["id"] for n in graph.get("nodes", [])]
    upstream: dict[str, list[str]] = {nid: [] for nid in nodes}
    for e in graph.get("edges", []):
        if e["to"] in upstream and e["from"] in upstream:
            upstream[e["to"]].append(e["from"])
    depth: dict[str, int] = {}

    def col(nid: str, seen: frozenset[str] = frozenset()) -> int:
        if nid not in depth:
            ups = [u for u in upstream[nid] if u not in seen]
            depth[nid] = 1 + max((col(u, seen | {nid}) for u in ups), default=-1)
        return depth[nid]

    rows: dict[int, int] = {}
    pos = {}
    for nid in nodes:
        c = col(nid)
        pos[nid] = (c, rows.get(c, 0))
        rows[c] = rows.get(c, 0) + 1
    return pos


def _short(text: str, n: int = 30) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def node_lines(node: dict[str, Any]) -> tuple[str, list[str], bool]:
    """(title, detail lines, failed) of a node as drawn in its box."""
    d = node.get("details") or {}
    kind = node.get("kind")
    lines: list[str] = []
    failed = False
    if kind == "commit":
        title = f"{node['repo']}@{node['commit'][:8]}"
        lines.append(f"project {node['project']}")
        if "size_bytes" in d:
            finished = (d.get("finished") or "")[5:19].replace("T", " ") or "not finished"
            lines.append(f"{human_size(d['size_bytes'])} · {finished}")
        job = d.get("job")
        if job:
            failed = job.get("state") in FAILED_STATES
            dur = f", {job['duration_s']:.1f} s" if job.get("duration_s") is not None else ""
            rejected = f", {d['rejected_rows']} rejected" if d.get("rejected_rows") else ""
            lines.append(f"{job['state'].removeprefix('JOB_').lower()}{dur}{rejected}")
            if failed and job.get("reason"):
                lines.append(job["reason"])  # before the datums: a box shows four lines
            lines.append(
                f"datums {job.get('data_processed', 0)} ok, {job.get('data_skipped', 0)} skip, "
                f"{job.get('data_failed', 0)} fail"
            )
        elif d.get("rejected_rows"):
            lines.append(f"{d['rejected_rows']} rows rejected")
        if d.get("commit_error"):
            failed = True
            lines.append(d["commit_error"])
    elif kind == "mlflow_run":
        title = f"MLflow run {d.get('run_name') or node['run_id'][:8]}"
        lines.append(f"{node['run_id'][:12]}  {(d.get('status') or '').lower()}")
        for k, v in list((d.get("metrics") or {}).items())[:2]:
            lines.append(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}")
    else:
        title = f"{node.get('name')} v{node.get('version')}"
        aliases = node.get("aliases") or []
        lines.append(" ".join(f"@{a}" for a in aliases) if aliases else "no alias")
        if d.get("status"):
            lines.append(str(d["status"]).lower())
    if d.get("error"):
        failed = True
        lines.append(d["error"])
    return title, lines, failed


def svg(graph: dict[str, Any]) -> str:
    pos = layout(graph)
    if not pos:
        return "<p class='muted'>(empty graph)</p>"
    cols = 1 + max(c for c, _ in pos.values())
    rows = 1 + max(r for _, r in pos.values())
    width, height = PAD * 2 + (cols - 1) * COL_W + NODE_W, PAD * 2 + (rows - 1) * ROW_H + NODE_H

    def xy(nid: str) -> tuple[int, int]:
        c, r = pos[nid]
        return PAD + c * COL_W, PAD + r * ROW_H

    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' width='{width}' "
        f"height='{height}' role='img' aria-label='lineage graph'>",
        "<defs><marker id='arr' viewBox='0 0 10 10' refX='10' refY='5' markerWidth='7' markerHeight='7' "
        "orient='auto'><path d='M0,0L10,5L0,10z' fill='#718096'/></marker></defs>",
    ]
    for e in graph.get("edges", []):
        if e["from"] not in pos or e["to"] not in pos:
            continue
        (x1, y1), (x2, y2) = xy(e["from"]), xy(e["to"])
        x1, y1, y2 = x1 + NODE_W, y1 + NODE_H // 2, y2 + NODE_H // 2
        mid = (x1 + x2) / 2
        parts.append(
            f"<path class='edge' marker-end='url(#arr)' d='M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}'/>"
        )
    for node in graph.get("nodes", []):
        x, y = xy(node["id"])
        title, lines, failed = node_lines(node)
        cls = f"node {node.get('kind')}" + (" failed" if failed else "")
        text = [f"<text class='t' x='{x + 8}' y='{y + 18}'>{escape(_short(title, 25))}</text>"]
        for i, line in enumerate(lines[:4]):
            bad = " class='bad'" if failed and i >= 2 else ""
            text.append(f"<text{bad} x='{x + 8}' y='{y + 36 + i * 15}'>{escape(_short(line, 29))}</text>")
        box = (
            f"<g class='{cls}' data-id='{escape(node['id'])}'><title>{escape(node['id'])}</title>"
            f"<rect x='{x}' y='{y}' width='{NODE_W}' height='{NODE_H}' rx='6'/>{''.join(text)}</g>"
        )
        url = node.get("url")
        parts.append(f"<a href='{escape(url)}'>{box}</a>" if url else box)
    parts.append("</svg>")
    return "".join(parts)


# -- records -------------------------------------------------------------------------------------
def record_html(rec: dict[str, Any], *, rollback_url: str) -> str:
    """One lineage record: heading, graph, and the table of its nodes."""
    name, version = rec.get("model_name"), rec.get("model_version")
    head = f"MLflow run {rec.get('mlflow_run_id')}"
    if name and version:
        head += f" → model {name} version {version}"
    af = rec.get("airflow") or {}
    sub = f"trained on {rec.get('project')}/{rec.get('train_repo')}@{rec.get('commit_set')}"
    if af.get("dag_id"):
        sub += f"; recorded by DAG {af['dag_id']}, run {af.get('run_id')}"
    graph = rec.get("graph") or {}
    rows = "".join(_row(n, rec, rollback_url) for n in graph.get("nodes", []))
    return (
        f"<section class='record'><h2>{escape(head)}</h2><p class='muted'>{escape(sub)}</p>"
        f"{svg(graph)}<table><tr><th>node</th><th>details</th><th></th></tr>{rows}</table></section>"
    )


def _row(node: dict[str, Any], rec: dict[str, Any], rollback_url: str) -> str:
    title, lines, failed = node_lines(node)
    d = node.get("details") or {}
    extra = ""
    if node.get("kind") == "mlflow_run" and d.get("metrics"):
        extra = "<br>" + escape(", ".join(f"{k}={v}" for k, v in d["metrics"].items()))
    link = f"<a href='{escape(node['url'])}'>open</a>" if node.get("url") else ""
    if node.get("kind") == "model_version":
        link += " " + rollback_form(
            rollback_url, node, (rec.get("model_aliases") or {}).get(node["name"], {})
        )
    style = " style='color:#c53030'" if failed else ""
    return (
        f"<tr><td><code>{escape(node['id'])}</code></td>"
        f"<td{style}><b>{escape(title)}</b><br>{'<br>'.join(escape(x) for x in lines)}{extra}</td>"
        f"<td>{link}</td></tr>"
    )


def rollback_form(action: str, node: dict[str, Any], aliases: dict[str, str]) -> str:
    """ "Roll back to this": a GET form to the plan page (nothing changes before the confirmation)."""
    options = "".join(f"<option>{escape(a)}</option>" for a in aliases) or "<option>production</option>"
    return (
        f"<form method='get' action='{escape(action)}' style='display:inline'>"
        f"<input type='hidden' name='model' value='{escape(node['name'])}'>"
        f"<input type='hidden' name='version' value='{escape(str(node['version']))}'>"
        f"<select name='alias' aria-label='alias'>{options}</select> "
        "<label><input type='checkbox' name='data' value='1'> and the data</label> "
        "<button type='submit'>Roll back to this</button></form>"
    )


def plan_html(plan: dict[str, Any], *, action: str, fingerprint: str, allowed: bool, data: bool) -> str:
    """The dry run of a rollback and the confirmation form (a POST)."""
    rows = [
        ("model", plan["model_name"]),
        (
            "alias",
            f"{plan['alias']}: {plan['alias_change']} (version {plan['from_version']} → {plan['to_version']})",
        ),
        ("MLflow run", plan["mlflow_run_id"]),
    ]
    for b in plan.get("data") or []:
        rows.append((b["branch"], f"{b['from_commit']} → {b['to_commit']} ({b['change']})"))
    if plan.get("data") is None:
        rows.append(("data", "not moved"))
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in rows)
    if not allowed:
        form = error_box("You may look at this plan but not apply it: it needs edit permission on the DAG.")
    else:
        form = (
            f"<form method='post' action='{escape(action)}'>"
            f"<input type='hidden' name='model' value='{escape(plan['model_name'])}'>"
            f"<input type='hidden' name='version' value='{escape(plan['to_version'])}'>"
            f"<input type='hidden' name='alias' value='{escape(plan['alias'])}'>"
            f"<input type='hidden' name='data' value='{'1' if data else ''}'>"
            f"<input type='hidden' name='confirm' value='{escape(fingerprint)}'>"
            "<label>reason <input name='reason' size='40'></label> "
            "<button type='submit'>Confirm rollback</button></form>"
        )
    return (
        "<h1>Roll back: plan (nothing has changed yet)</h1>"
        f"<table>{table}</table>{form}<details><summary>plan as JSON</summary>"
        f"<pre>{escape(json.dumps({k: v for k, v in plan.items() if k != 'lineage'}, indent=2))}</pre></details>"
    )


def result_html(result: dict[str, Any]) -> str:
    moved = [b["branch"] for b in result.get("data") or [] if b.get("moved")]
    text = (
        f"{result['model_name']}@{result['alias']} is now on version {result['to_version']}"
        f" (was {result['from_version']})"
        + (f"; moved {', '.join(moved)} (commit set {result.get('commit_set')})" if moved else "")
    )
    return f"<h1>Rolled back</h1><p class='ok'>{escape(text)}</p>"


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def query_string(**params: str | None) -> str:
    return urlencode({k: v for k, v in params.items() if v})
