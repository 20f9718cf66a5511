"""Commissioning reports: JSON for machines, HTML for people (self-contained, no script), side by side.

``write_report(report, directory)`` writes ``check-<UTC time>.json`` and ``.html`` (the names the
dashboard's Reports page lists) and returns both paths.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, select_autoescape

from meterbridge.commissioning.model import Report

__all__ = ["report_dict", "write_report"]

_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Commissioning report {{ started }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:1rem;color:#1a1a1a;line-height:1.45}
table{border-collapse:collapse;width:100%;margin-bottom:1rem}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #c8ccd2;vertical-align:top}
thead th{background:#f1f3f6}.pass{color:#14532d}.fail{color:#8a1c14;font-weight:700}.skip{color:#555b63}
.badge{display:inline-block;padding:0 .5rem;border-radius:.6rem;background:#f1f3f6;text-transform:uppercase;font-weight:700}
code{font-size:.85em}
</style></head><body>
<h1>Commissioning report</h1>
<p>Installation: {{ installation }}<br>From {{ started }} to {{ finished }} (UTC)</p>
<p>Result: <span id="verdict" class="badge {{ status }}">{{ status }}</span></p>
<h2>Summary</h2>
<table><thead><tr><th scope="col">Item</th><th scope="col">Result</th><th scope="col">Summary</th></tr></thead><tbody>
{% for r in results %}<tr><th scope="row"><a href="#{{ r.item }}">{{ r.title }}</a></th><td class="{{ r.status }}">{{ r.status }}</td><td>{{ r.summary }}</td></tr>
{% endfor %}</tbody></table>
{% for r in results %}
<section id="{{ r.item }}"><h2>{{ r.title }}: <span class="{{ r.status }}">{{ r.status }}</span></h2>
<p>{{ r.summary }}</p>
{% if r.findings %}<table><thead><tr><th scope="col">Subject</th><th scope="col">Result</th><th scope="col">Detail</th><th scope="col">Figures</th></tr></thead><tbody>
{% for f in r.findings %}<tr><th scope="row">{{ f.subject }}</th><td class="{{ f.status }}">{{ f.status }}</td><td>{{ f.detail }}</td><td>{% for k, v in f.figures.items() %}<code>{{ k }}={{ v }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endfor %}</tbody></table>{% endif %}
</section>
{% endfor %}
<h2>Options</h2><p>{% for k, v in options.items() %}<code>{{ k }}={{ v }}</code> {% endfor %}</p>
</body></html>
"""


def report_dict(report: Report) -> dict[str, Any]:
    data = asdict(report)
    data["status"] = report.status
    data["started"] = report.started.isoformat()
    data["finished"] = report.finished.isoformat()
    return data


def write_report(report: Report, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stem = "check-" + report.started.strftime("%Y%m%dT%H%M%SZ")
    data = report_dict(report)
    json_path = directory / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    html = env.from_string(_HTML).render(**data)
    html_path = directory / f"{stem}.html"
    html_path.write_text(html, encoding="utf-8")
    return html_path, json_path
