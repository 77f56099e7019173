"""The audit as HTML: a section the pipeline's report can embed, and a self-contained page around it.

Every user-controlled string (model names, paths, concept and attribute names, formulas) goes through
jinja2's autoescape. Pictures are embedded as base64 PNG: for each unit shown, its most activating probe
images with the unit's mask (bilinearly upsampled map above the unit's threshold) kept bright and outlined
in yellow and the rest dimmed, as network dissection draws them, and the formula beside them.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import jinja2
import numpy as np
from markupsafe import Markup

from fairlatent.explain.audit import AUDIT_METRICS, AuditResult, ClassifierAudit
from fairlatent.explain.tally import upsample_maps

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)

_STYLE = """
.fl-explain { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d1d1f; max-width: 1200px; }
.fl-explain h2 { margin-top: 0.5em; }
.fl-explain table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 14px; }
.fl-explain th, .fl-explain td { border-bottom: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: middle; }
.fl-explain th { background: #f3f3f5; }
.fl-explain td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.fl-explain .formula { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 14px; white-space: nowrap; }
.fl-explain .prot { background: #fff4e0; }
.fl-explain .note { color: #555; font-size: 13px; max-width: 1000px; }
.fl-explain img { image-rendering: pixelated; display: block; }
"""

_SECTION = _ENV.from_string("""
<section class="fl-explain">
<h2>Where the bias lives: compositional explanations of neurons</h2>
<p class="note">Data <code>{{ r.data }}</code>, {{ r.probe }} probe images; {{ r.concepts|length }} concepts
({{ r.n_spatial }} part masks, {{ r.n_image }} image-level attributes). Each unit is thresholded at its top
{{ r.quantile_pct }} % of activations over all images and positions; its map is upsampled bilinearly to the mask
resolution; IoU is pooled over the whole probe set; formulas of up to {{ r.length }} concepts with OR, AND, AND NOT
(beam {{ r.beam }}{% if r.penalty != 1.0 %}, complexity penalty {{ r.penalty }}{% endif %}). An image-level attribute
covers every pixel of the images that have it. A unit is <em>explained</em> when its formula's IoU exceeds
{{ r.detector }}.{% if r.protected %} Protected: <b>{{ r.protected }}</b> (concepts: {{ r.protected_concepts|join(', ') }});
target: <b>{{ r.target }}</b>. Protected units are explained units whose formula mentions a protected concept;
"ablated" zeroes them, "control" zeroes as many other units drawn at random; Δ is the paired bootstrap
difference from the intact classifier (median [95 % interval]), metrics in percent.{% endif %}</p>
<h3>Side by side</h3>
<table>
<tr><th>model</th><th>layer</th><th>units</th><th>explained</th>{% if r.protected %}<th>protected units</th><th>share of layer</th><th>share of |contribution|</th>{% endif %}</tr>
{% for row in r.rows %}<tr><td>{{ row.name }}</td><td>{{ row.layer }}</td><td class="num">{{ row.units }}</td><td class="num">{{ row.explained }}</td>
{% if r.protected %}<td class="num">{{ row.n_protected }}</td><td class="num">{{ row.share }}</td><td class="num">{{ row.contribution_share }}</td>{% endif %}</tr>
{% endfor %}</table>
{% if r.metrics %}<h3>{{ r.target }} with the protected units zeroed</h3>
<table>
<tr><th>model</th><th>metric</th><th>intact</th><th>protected units zeroed</th><th>Δ zeroed − intact</th><th>Δ control − intact</th></tr>
{% for row in r.rows %}{% for cells in row.metric_rows %}<tr><td>{{ row.name if loop.first else '' }}</td>{% for cell in cells %}<td class="{{ 'num' if not loop.first else '' }}">{{ cell }}</td>{% endfor %}</tr>
{% endfor %}{% endfor %}</table>{% endif %}
{% for m in r.models %}
<h3>{{ m.name }} <span class="note">({{ m.path }}, layer {{ m.layer }})</span></h3>
{% if m.notes %}<p class="note">{{ m.notes|join('; ') }}</p>{% endif %}
<table>
<tr><th>unit</th><th>formula</th><th>IoU</th><th>best single concept</th>{% if m.has_contribution %}<th>contribution to {{ r.target }} logit</th>{% endif %}<th>most activating probe images (mask outlined)</th></tr>
{% for u in m.units %}<tr class="{{ 'prot' if u.protected else '' }}"><td class="num">{{ u.unit }}{% if u.protected %} ★{% endif %}</td>
<td class="formula">{{ u.formula }}</td><td class="num">{{ u.iou }}</td><td class="formula">{{ u.concept }} ({{ u.concept_iou }})</td>
{% if m.has_contribution %}<td class="num">{{ u.contribution }}</td>{% endif %}
<td><img alt="unit {{ u.unit }}: {{ u.formula }}" src="data:image/png;base64,{{ u.png }}" width="{{ u.width }}" height="{{ u.height }}"></td></tr>
{% endfor %}</table>
{% endfor %}
</section>
""")

_PAGE = _ENV.from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>body { margin: 24px; background: #fff; }{{ style }}</style></head>
<body><h1 style="font-family: system-ui, sans-serif">{{ title }}</h1>
{{ section }}
</body></html>
""")


def _fmt(x: Any, spec: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(float(x), spec)


def _interval(stats: dict[str, float] | None) -> str:
    if not stats or stats.get("median") is None or not math.isfinite(stats["median"]):
        return "n/a"
    return f"{stats['median']:.1f} [{stats['lo']:.1f}, {stats['hi']:.1f}]"


def _png_b64(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def overlay(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` (H×W×3 uint8) with pixels outside ``mask`` dimmed and the mask's border in yellow."""
    out = image.astype(np.float32)
    out[~mask] = out[~mask] * 0.3 + 20
    inner = mask.copy()
    inner[1:] &= mask[:-1]
    inner[:-1] &= mask[1:]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    out[mask & ~inner] = (255, 215, 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def unit_strip(audit: ClassifierAudit, images: np.ndarray, unit: int, scale: int) -> np.ndarray:
    """The unit's most activating probe images with its mask overlaid, side by side (upscaled ``scale``×)."""
    d = audit.dissection
    rows = d.concepts.indices[d.top_images[unit][:5]]
    pictures = np.asarray(images[rows])
    masks = (upsample_maps(d.top_maps[unit][:5], pictures.shape[1:3]) > d.thresholds[unit]).numpy()
    tiles = [np.kron(overlay(p, m), np.ones((scale, scale, 1), np.uint8)) for p, m in zip(pictures, masks)]
    gap = np.full((tiles[0].shape[0], 4, 3), 255, np.uint8)
    parts = []
    for t in tiles:
        parts += [t, gap]
    return np.concatenate(parts[:-1], axis=1)


def shown_units(audit: ClassifierAudit, top: int = 8, protected: int = 8) -> list[int]:
    """The protected units (strongest first, up to ``protected``), then the best-explained others."""
    ious = np.array([e.iou for e in audit.dissection.explanations])
    prot = sorted(audit.protected_units, key=lambda u: -ious[u])[:protected]
    rest = [int(u) for u in np.argsort(-ious, kind="stable") if int(u) not in prot][:top]
    return [int(u) for u in prot] + rest


def _context(result: AuditResult, images: np.ndarray, top: int) -> dict[str, Any]:
    first = next(iter(result.audits.values()))
    concepts = first.dissection.concepts
    s = result.settings
    rows, models = [], []
    for name, a in result.audits.items():
        summ = a.summary()
        metric_rows = [[m, _interval(a.metrics.get("intact", {}).get(m)), _interval(a.metrics.get("ablated", {}).get(m)),
                        _interval(a.differences.get("ablated", {}).get(m)),
                        _interval(a.differences.get("control", {}).get(m))] for m in AUDIT_METRICS] if a.metrics else []
        share = summ.get("protected_contribution_share")
        rows.append(dict(name=name, layer=a.dissection.layer, units=a.dissection.units,
                         explained=summ["explained_units"], n_protected=len(a.protected_units),
                         share=f"{100 * len(a.protected_units) / a.dissection.units:.1f} %",
                         contribution_share="n/a" if share is None else f"{100 * share:.1f} %", metric_rows=metric_rows))
        scale = max(1, round(100 / images.shape[1]))  # tiles of ~100 px: 32 px ×3, 64 px ×2
        table = a.unit_table()
        units = []
        for u in shown_units(a, top=top):
            strip = unit_strip(a, images, u, scale)
            row = table.iloc[u]
            units.append(dict(unit=u, protected=u in a.protected_units, formula=row["formula"] or "(none)",
                              iou=_fmt(row["iou"]), concept=row["concept"] or "(none)", concept_iou=_fmt(row["concept_iou"]),
                              contribution=_fmt(row.get("contribution"), "+.3f") if a.contribution is not None else "",
                              png=_png_b64(strip), width=strip.shape[1], height=strip.shape[0]))
        models.append(dict(name=name, path=str(a.model_path), layer=a.dissection.layer, units=units,
                           has_contribution=a.contribution is not None, notes=a.notes))
    return dict(
        data=str(result.data_path), probe=s.get("probe_images"), concepts=result.concepts,
        n_spatial=concepts.n_spatial, n_image=concepts.n_image, quantile_pct=f"{100 * float(s['quantile']):g}",
        length=s["length"], beam=s["beam"], penalty=float(s["penalty"]), detector=s["detector_iou"],
        protected=result.protected if any(a.protected for a in result.audits.values()) else None,
        protected_concepts=first.protected.concepts if first.protected else [], target=result.target,
        metrics=list(AUDIT_METRICS) if any(a.metrics for a in result.audits.values()) else [],
        rows=rows, models=models,
    )


def render_audit_section(result: AuditResult, images: np.ndarray | None = None, *, top: int = 8) -> str:
    """The audit as one HTML ``<section>`` (with its ``<style>``), for embedding in a report page.

    ``images``: the probe data set's images (default: loaded from ``result.data_path``)."""
    if images is None:
        from fairlatent.data.dataset import load_dataset

        images = load_dataset(result.data_path).images
    return f"<style>{_STYLE}</style>\n" + _SECTION.render(r=_context(result, images, top))


def render_audit_page(result: AuditResult, images: np.ndarray | None = None, *, title: str | None = None,
                      top: int = 8) -> str:
    """A self-contained HTML page (no external resources) holding :func:`render_audit_section`."""
    title = title or f"fairlatent explain: {', '.join(result.audits)}"
    section = render_audit_section(result, images, top=top)
    return _PAGE.render(title=title, style="", section=Markup(section))  # already escaped
