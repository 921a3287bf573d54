"""The run report: one self-contained HTML file (plots as inline SVG, the video embedded) that opens offline.

It reads only the run folder, so it can be written at any moment, while a run goes on or after it ended.
"""

from __future__ import annotations

import base64
import difflib
import html
import json
from pathlib import Path

from robosmith.runs import AgentRun, CandidateFolder, TrainingRun, read_metrics, write_text_atomic

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def svg_plot(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, width: int = 420,
             height: int = 220) -> str:
    """A line chart as inline SVG: one polyline per named series, with axes, ticks and a legend."""
    points = [p for s in series.values() for p in s]
    if not points:
        return f'<div class="empty">{html.escape(title)}: no data yet</div>'
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    if x1 == x0:
        x1 = x0 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    left, right, top, bottom = 48, 10, 22, 34

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg class="plot" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{left}" y="14" class="title">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" class="axis"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" class="axis"/>']
    for frac in (0.0, 0.5, 1.0):
        yv, xv = y0 + frac * (y1 - y0), x0 + frac * (x1 - x0)
        parts.append(f'<text x="{left - 4}" y="{sy(yv) + 4:.1f}" class="tick" text-anchor="end">{yv:.3g}</text>')
        parts.append(f'<text x="{sx(xv):.1f}" y="{height - bottom + 14}" class="tick" '
                     f'text-anchor="middle">{xv:.3g}</text>')
    parts.append(f'<text x="{(left + width) / 2:.0f}" y="{height - 4}" class="tick" '
                 f'text-anchor="middle">{html.escape(xlabel)}</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
        parts.append(f'<text x="{width - right - 4}" y="{top + 12 * (i + 1)}" class="legend" fill="{colour}" '
                     f'text-anchor="end">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _curves(folder: Path) -> tuple[str, str]:
    path = CandidateFolder(folder).metrics
    rows = read_metrics(path) if path.is_file() else []
    steps = [r["env_steps"] for r in rows]
    success = [(s, r["success_rate"]) for s, r in zip(steps, rows, strict=True) if r.get("success_rate") is not None]
    reward = [(s, r["mean_reward"]) for s, r in zip(steps, rows, strict=True)]
    components = sorted({k for r in rows for k in r if k.startswith("reward/")})
    comp = {k.removeprefix("reward/"): [(s, r[k]) for s, r in zip(steps, rows, strict=True) if k in r]
            for k in components}
    main = svg_plot({"success rate": success, "mean reward": reward}, "success and reward", "env steps")
    return main, svg_plot(comp, "reward components (weighted, per step)", "env steps")


def _diff(old: str | None, new: str) -> str:
    if old is None:
        return '<pre class="code">' + html.escape(new) + "</pre>"
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), "best so far", "candidate", lineterm="")
    out = []
    for line in lines:
        cls = "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx"
        out.append(f'<span class="{cls}">{html.escape(line)}</span>')
    return '<pre class="code">' + ("\n".join(out) or "(identical to the best so far)") + "</pre>"


def video_html(path: Path) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<video controls muted loop width="320" src="data:video/mp4;base64,{data}"></video>'


STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{margin-bottom:4px} .sub{color:#666} table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ddd;padding:4px 8px;font-size:14px;text-align:left}
.ok{color:#2a7} .bad{color:#c33} .kept{background:#eefbe9}
.cand{border:1px solid #ddd;border-radius:6px;padding:10px;margin:10px 0}
.plots{display:flex;flex-wrap:wrap;gap:8px} pre.code{background:#f7f7f7;padding:8px;font-size:12px;overflow-x:auto}
.add{color:#1a7f37} .del{color:#cf222e} .title{font-size:13px;font-weight:600} .tick{font-size:10px;fill:#555}
.legend{font-size:11px} .axis{stroke:#999} .empty{color:#999;padding:20px}
"""


def write_report(run_dir: Path) -> Path:
    """Write run_dir/report.html from what the run folder holds now."""
    run = AgentRun(run_dir)
    info = json.loads(run.run_info.read_text())
    summary = json.loads(run.summary.read_text()) if run.summary.is_file() else {}
    task = info["task"]
    calls = []
    if run.llm_calls.is_file():
        calls = [json.loads(x) for x in run.llm_calls.read_text().splitlines() if x.strip()]
    tokens = sum((c.get("prompt_tokens") or 0) + (c.get("completion_tokens") or 0) for c in calls)
    cost = sum(c.get("cost_usd") or 0.0 for c in calls)

    body = [f"<h1>robosmith run: {html.escape(task['name'])}</h1>",
            f'<div class="sub">{html.escape(task["description"])}</div>',
            f"<p>Success: <code>{html.escape(task['success'])}</code> (target {task['success_target']:.0%}). "
            f"Proposer: <b>{html.escape(info['proposer'])}</b>. LLM calls: {len(calls)}, {tokens} tokens, "
            f"${cost:.4f}. Status: {html.escape(summary.get('stop_reason') or 'running')}.</p>"]
    real = summary.get("real")
    if real:
        findings = "".join(f"<li>{html.escape(f)}</li>" for f in real["findings"])
        fitted = ", ".join(f"{html.escape(k)} = {v:g}" for k, v in real["fitted"].items())
        body.append(f"<h2>The real arm</h2><p>{html.escape(real['dataset'])}, episodes {real['episodes']}: arm joints "
                    f"{real['gap_before_deg']:.2f} deg RMS from the simulation before the fit, "
                    f"{real['gap_after_deg']:.2f} deg after ({fitted}).</p><ul>{findings}</ul>")
    best, reference = summary.get("best"), summary.get("reference")
    if best:
        folder = run_dir / best["dir"]
        ref = ""
        if reference and reference.get("success_rate") is not None:
            ref = f" (the task's reference reward, trained the same way: {reference['success_rate']:.0%})"
        body.append(f"<h2>Best: candidate {best['id']}, evaluation success {best['success_rate']:.0%}{ref}</h2>")
        body.append(f'<div class="plots">{video_html(CandidateFolder(folder).video)}{"".join(_curves(folder))}</div>')

    best_code: str | None = None
    rows, sections = [], []
    for it_dir in sorted(run_dir.glob("iter_*")):
        for cand_dir in sorted(it_dir.glob("cand_*")):
            cand = CandidateFolder(cand_dir)
            record = json.loads(cand.record.read_text()) if cand.record.is_file() else {}
            code = cand.reward_body.read_text() if cand.reward_body.is_file() else ""
            cid = record.get("id", f"{it_dir.name}/{cand_dir.name}")
            success = record.get("success_rate")
            status = record.get("status", "training" if cand.metrics.is_file() else "pending")
            kept = record.get("kept", False)
            cls = "ok" if status == "ok" else "bad"
            rows.append(f'<tr class="{"kept" if kept else ""}"><td>{cid}</td><td class="{cls}">{status}</td>'
                        f'<td>{"" if success is None else f"{success:.0%}"}</td>'
                        f'<td>{html.escape(record.get("why", ""))}</td></tr>')
            plots = "".join(_curves(cand_dir)) if cand.metrics.is_file() else ""
            sections.append(f'<div class="cand" id="c{cid}"><h3>Candidate {cid} <span class="{cls}">{status}</span>'
                            f'</h3><div>{html.escape(record.get("origin", ""))}</div>'
                            f'<div>{html.escape(record.get("reason") or "")}</div>'
                            f'<div class="plots">{plots}</div>{_diff(best_code, code) if code else ""}</div>')
            if kept:
                best_code = code
    body.append("<h2>Timeline</h2><table><tr><th>candidate</th><th>status</th><th>success</th><th>decision</th>"
                "</tr>" + "".join(rows) + "</table>")
    body.extend(sections)
    body.extend(_randomization_section(run_dir, summary.get("randomization")))
    page = (f'<!doctype html><html><head><meta charset="utf-8"><title>robosmith {html.escape(task["name"])}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    out = run.report
    write_text_atomic(out, page)
    return out


def _robustness_table(result: dict) -> str:
    rows = "".join(
        f'<tr><td>{html.escape(v["name"])}</td><td class="{"ok" if v["success_rate"] >= 0.8 else "bad"}">'
        f'{v["success_rate"]:.0%}</td><td>{v["ci95"][0]:.0%}-{v["ci95"][1]:.0%}</td></tr>'
        for v in result["variants"])
    return f"<table><tr><th>variant</th><th>success</th><th>95% CI</th></tr>{rows}</table>"


def _ranges_table(ranges: list[dict]) -> str:
    rows = "".join(f'<tr><td>{html.escape(r["name"])}</td><td>{r["bounds"][0]:.4g}</td><td>{r["bounds"][1]:.4g}</td>'
                   f'<td>{r["nominal"]:.4g}</td></tr>' for r in ranges)
    return f"<table><tr><th>parameter</th><th>low</th><th>high</th><th>task value</th></tr>{rows}</table>"


def _randomization_section(run_dir: Path, summary: dict | None) -> list[str]:
    """The randomization phase: the policy without randomization, then each candidate's ranges beside its
    robustness on the task's default suite."""
    prior = AgentRun(run_dir).prior
    robustness = TrainingRun(prior).robustness
    if not robustness.is_file():
        return []
    out = [f"<h2>Randomization phase</h2><p>{html.escape((summary or {}).get('stop_reason') or 'running')}. "
           "Candidates train the best reward under their ranges; selection is by the worst variant of the "
           "default suite, then the mean.</p>",
           '<div class="cand"><h3>Without randomization (the best reward\'s policy)</h3>'
           f"{_robustness_table(TrainingRun(prior).read_robustness('default'))}</div>"]
    for cand_dir in sorted(run_dir.glob("dr_*/cand_*")):
        cand = CandidateFolder(cand_dir)
        record = json.loads(cand.record.read_text()) if cand.record.is_file() else {}
        status = record.get("status", "training" if cand.metrics.is_file() else "pending")
        cls = "ok" if status == "ok" else "bad"
        ranges = _ranges_table(record["ranges"]) if record.get("ranges") else ""
        table = _robustness_table(cand.read_robustness("default")) if cand.robustness.is_file() else ""
        out.append(f'<div class="cand"><h3>Candidate {html.escape(record.get("id", cand_dir.parent.name))} '
                   f'<span class="{cls}">{status}</span></h3><div>{html.escape(record.get("origin", ""))}</div>'
                   f'<div>{html.escape(record.get("why") or record.get("reason") or "")}</div>'
                   f'<div class="plots">{ranges}{table}</div></div>')
    return out
