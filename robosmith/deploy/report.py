"""deploy.html: what a deployment did, next to what the same policy does in simulation, in one offline page."""

from __future__ import annotations

import collections
import html
import json
from pathlib import Path

from robosmith.report import STYLE, video_html
from robosmith.runs import write_text_atomic


def _rate(rate: float | None, ci: list[float] | None = None) -> str:
    if rate is None:
        return "-"
    return f"{rate:.0%}" + (f" (95% CI {ci[0]:.0%}-{ci[1]:.0%})" if ci else "")


def write_deploy_report(out_dir: Path) -> Path:
    """Writes out_dir/deploy.html from deploy.json, safety.jsonl and the rehearsal; returns its path."""
    out_dir = Path(out_dir)
    result = json.loads((out_dir / "deploy.json").read_text())
    log = out_dir / "safety.jsonl"
    rules = collections.Counter(json.loads(line)["limit"] for line in log.open()) if log.is_file() else {}
    where = "simulated SO-101 (--sim)" if result["sim"] else "SO-101"
    rows = "".join(
        f"<tr><td>{e['episode']}</td><td class=\"{'ok' if e['success'] else 'bad'}\">"
        f"{'success' if e['success'] else 'failure'}</td><td>{e['steps']}</td>"
        f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in e['interventions'].items()) or '-')}</td>"
        f"<td>{html.escape(e['stopped_by'] or '-')}</td></tr>" for e in result["episodes"])
    rule_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in rules.most_common())
    rehearsal = result.get("rehearsal") or {}
    notes = []
    if result.get("privileged_fields"):
        notes.append(f"Fields no sensor of the arm measures came from the simulator: "
                     f"{', '.join(result['privileged_fields'])}.")
    if result.get("interrupted") or result.get("error"):
        notes.append(f"Stopped early: {html.escape(str(result.get('error')))}.")
    body = [
        f"<h1>Deployment: {html.escape(result['task'])}</h1>",
        f"<p class='sub'>{html.escape(result['kind'])} policy {html.escape(str(result['policy']))} on the {where}; "
        f"{result.get('n', 0)} episodes, seed {result['seed']}, joints in {result['units']}.</p>",
        "<table><tr><th></th><th>success</th></tr>"
        f"<tr><td>this deployment</td><td>{_rate(result['success_rate'], result['ci95'])}</td></tr>"
        f"<tr><td>the policy in simulation (its eval.json)</td><td>{_rate(result['sim_success_rate'])}</td></tr>"
        "</table>",
        "".join(f"<p>{n}</p>" for n in notes),
        "<h2>Episodes</h2><table><tr><th>episode</th><th>outcome</th><th>steps</th><th>safety interventions</th>"
        f"<th>stopped by</th></tr>{rows}</table>",
        "<h2>Safety interventions by rule</h2>"
        + (f"<table><tr><th>rule</th><th>interventions (joint-steps)</th></tr>{rule_rows}</table>"
           if rules else "<p>none</p>"),
    ]
    if rehearsal:
        body.append(f"<h2>Rehearsal in simulation</h2><p>{rehearsal['steps']} steps, interventions "
                    f"{html.escape(str(rehearsal['interventions'] or 'none'))}</p>"
                    + video_html(Path(rehearsal["video"])))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>deploy {html.escape(result['task'])}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    path = out_dir / "deploy.html"
    write_text_atomic(path, page)
    return path
