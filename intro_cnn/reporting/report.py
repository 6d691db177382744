"""The report page: one self-contained HTML page with everything the pipeline produced.

The page follows the notebook: the convolution demos, then the networks (architectures,
training curves, filters, feature maps, the batch-normalisation comparison), then what the
notebook does not show: confusion matrices, the most confident mistakes, accuracy against size,
the comparison table and the verdicts on the notebook's two claims. It ends with the data
sources (with a warning when the demo image is a fallback) and the provenance of the run.

The page opens offline: images are embedded as base64 ``data:`` URIs, the CSS is inline, and
nothing is loaded from elsewhere. The two scripts are inline: the drawing pad's
(intro_cnn/reporting/drawpad.py) with its weights, and the convolution playground's
(intro_cnn/reporting/playground.py) with its image; without JavaScript their sections stay
hidden and the static figures say the same. Every string read from a file is HTML-escaped.
Text is in ``report.lang`` (es, the notebook's language, or en).

This module renders the page: :func:`build_html` fills the template with what
:mod:`intro_cnn.reporting.report_inputs` read; ``stages/report.py`` writes it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from intro_cnn import config, i18n
from intro_cnn.evaluation import claims
from intro_cnn.reporting import drawpad, playground
from intro_cnn.reporting.errors import ReportError, raising
from intro_cnn.reporting.report_inputs import LayerRow, NetworkFigure, ReportInputs

# The page's template and style (the drawing pad adds its own style).
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html"
REPORT_CSS = Path(__file__).resolve().parent / "assets" / "report.css"


# Network figure kinds (index.json "kind") grouped into the page's sections, in order.
NETWORK_SECTIONS = (
    ("sec_training", ("history", "history_zoom")),
    ("sec_filters", ("filters",)),
    ("sec_feature_maps", ("feature_maps",)),
    ("sec_bn", ("bn_comparison",)),
    ("sec_confusion", ("confusion",)),
    ("sec_wrong", ("wrong",)),
    ("sec_seeds", ("accuracy_by_seed",)),
    ("sec_size", ("accuracy_vs_params",)),
)

# Provenance tags shown, in order (tracking.provenance_tags() plus the Keras version).
PROVENANCE_KEYS = ("git_commit", "git_dirty", "dvc_exp_name", "python", "keras")


VERDICT_CLASS = {
    claims.HOLDS: "holds",
    claims.PARTLY: "partly",
    claims.DOES_NOT_HOLD: "fails",
    claims.NOT_DISTINGUISHABLE: "noise",
    claims.NOT_CHECKED: "unchecked",
}


def text(key: str, lang: str, **fields: Any) -> str:
    """The page's text ``key`` in ``lang`` (the ``report`` texts); ``fields`` fill it."""
    return i18n.text("report", key, lang, **fields)


def has_text(key: str, lang: str) -> bool:
    return i18n.has("report", key, lang)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _caption(fig: NetworkFigure, lang: str) -> str:
    models = fig.models or ("",)
    key = f"cap_{fig.kind}"
    if not has_text(key, lang):
        return fig.file
    return text(key, lang, model=", ".join(models), plain=models[0], bn=models[-1])


def _summary_view(model: str, rows: Sequence[LayerRow], lang: str) -> dict[str, Any]:
    total = sum(r.params for r in rows)
    return {
        "caption": text("total_params", lang, model=model, n=i18n.thousands(total)),
        "head": [text(k, lang) for k in ("col_layer", "col_type", "col_shape", "col_params")],
        "rows": [
            {
                "name": r.name,
                "type": r.type,
                "shape": r.output_shape,
                "params": i18n.thousands(r.params),
            }
            for r in rows
        ],
    }


# How each comparison.csv column is shown: None = text, else a format for float(value).
_COLUMN_FORMATS: dict[str, str | None] = {
    "model": None,
    "params": "int",
    "epochs": "int",
    "train_seconds": "{:.1f}",
    "train_samples_per_s": "int",
    "val_accuracy": "{:.4f}",
    "test_accuracy": "{:.4f}",
    "test_loss": "{:.4f}",
    "inference_images_per_s": "int",
}


def _cell(column: str, value: str) -> dict[str, Any]:
    fmt = _COLUMN_FORMATS.get(column)
    if fmt is None:
        return {"text": value, "num": False}
    try:
        number = float(value)
    except ValueError:
        return {"text": value, "num": False}
    shown = i18n.thousands(round(number)) if fmt == "int" else fmt.format(number)
    return {"text": shown, "num": True}


def _column_title(column: str, lang: str) -> str:
    key = "col_params" if column == "params" else f"col_{column}"
    return text(key, lang) if has_text(key, lang) else column


def _seed_cells(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A model's seeds, test accuracy mean ± sd, and 95 % interval (— with one seed)."""
    n = int(entry.get("n", 0))
    test = entry.get("test_accuracy") or {}
    if not n or not test:
        return [{"text": "", "num": False}] * 3
    interval = f"[{float(test['low']):.4f}, {float(test['high']):.4f}]" if n > 1 else "—"
    return [
        {"text": str(n), "num": True},
        {"text": f"{float(test['mean']):.4f} ± {float(test['std']):.4f}", "num": True},
        {"text": interval, "num": True},
    ]


def comparison_view(
    rows: Sequence[Mapping[str, str]],
    lang: str,
    spread: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The comparison table with one column per model and one row per measure: nine measures
    side by side would not fit a page, four or five models do. The designated models' measures
    come first, then each model across its seeds (``spread``: compare's ``seeds`` entries)."""
    if not rows:
        return None
    measures = [c for c in rows[0] if c != "model"]
    models = [row.get("model", "") for row in rows]
    table = [(_column_title(m, lang), [_cell(m, row.get(m, "")) for row in rows]) for m in measures]
    if spread:
        per_model = [_seed_cells(spread.get(m, {})) for m in models]
        for i, key in enumerate(("col_seeds_n", "col_seeds_test_mean", "col_seeds_test_interval")):
            table.append((text(key, lang), [cells[i] for cells in per_model]))
    return {
        "corner": text("col_model", lang),
        "models": models,
        "rows": table,
    }


def claim_view(entry: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """One claim of claims.json, every sentence from the catalogue in ``lang``."""
    try:
        claim = claims.Claim.from_json(entry)
        statement = claims.statement(claim.id, lang)
        reason = claims.reason(claim, lang)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"{config.COMPARE_CLAIMS}: a claim this report cannot read ({exc}): rerun "
            "`dvc repro compare`."
        ) from None
    return {
        "css": VERDICT_CLASS.get(claim.verdict, "unchecked"),
        "statement": statement,
        "verdict": claims.verdict_name(claim.verdict, lang),
        "parts": [
            (claims.part_name(part, lang), claims.answer(value, lang))
            for part, value in claims.ordered_parts(claim)
        ],
        "reason": reason,
    }


def _v(kind: str, value: Any) -> dict[str, Any]:
    """A value of a definition list: shown as ``code``, ``mono``, plain ``text``."""
    return {"kind": kind, "text": str(value)}


# The exception a source's recorded reason starts with ("ConnectionError: ..."), and the text
# that says what happened in the page's language; the raw reason stays beside it as a detail.
REASON_KINDS = {
    "ConnectionError": "reason_connection",
    "ConnectTimeout": "reason_timeout",
    "ReadTimeout": "reason_timeout",
    "Timeout": "reason_timeout",
    "HTTPError": "reason_http",
    "SSLError": "reason_tls",
}


def reason_kind(reason: str, lang: str) -> str:
    """What a failed source's ``reason`` means, in ``lang`` (the raw text is English)."""
    name = reason.split(":", 1)[0].strip() if ":" in reason else ""
    return text(REASON_KINDS.get(name, "reason_other"), lang)


def _failed(failed: Sequence[Mapping[str, Any]], lang: str) -> dict[str, Any]:
    items = [
        {
            "source": f.get("source", ""),
            "location": f.get("location") or f.get("url") or "",
            "kind": reason_kind(f.get("reason", ""), lang),
            "reason": f.get("reason", ""),
        }
        for f in failed
    ]
    return {"kind": "failed", "entries": items}


def sources_view(sources: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """Where MNIST and the demo image came from; a warning if the image is the fallback."""
    image = sources.get("image") or {}
    warning = None
    if image.get("fallback"):
        first = (image.get("failed") or [{}])[0]
        warning = text(
            "fallback_warning",
            lang,
            url=first.get("url", ""),
            why=reason_kind(first.get("reason", ""), lang),
            file=image.get("url", image.get("file", "")),
        )
    mnist = sources.get("mnist") or {}
    mnist_pairs = [
        (text("source", lang), _v("code", mnist.get("source", ""))),
        (text("location", lang), _v("mono", mnist.get("location", ""))),
    ]
    if mnist.get("set_by"):
        mnist_pairs.append((text("set_by", lang), _v("code", mnist["set_by"])))
    if mnist.get("file_sha256"):
        mnist_pairs.append((text("file_sha256", lang), _v("mono", mnist["file_sha256"])))
    if mnist.get("content_sha256"):
        mnist_pairs.append((text("content_check", lang), _v("text", text("content_ok", lang))))
    if mnist.get("failed"):
        mnist_pairs.append((text("failed_sources", lang), _failed(mnist["failed"], lang)))
    image_pairs = [
        (text("source", lang), _v("code", image.get("source", ""))),
        (text("location", lang), _v("mono", image.get("url", ""))),
        (text("image_file", lang), _v("code", image.get("file", ""))),
    ]
    if image.get("size"):
        size = " × ".join(str(v) for v in image["size"])
        image_pairs.append((text("image_size", lang), _v("text", size)))
    if image.get("sha256"):
        image_pairs.append((text("file_sha256", lang), _v("mono", image["sha256"])))
    if image.get("failed"):
        image_pairs.append((text("failed_sources", lang), _failed(image["failed"], lang)))
    return {"warning": warning, "mnist": mnist_pairs, "image": image_pairs}


def _flag(value: str, lang: str) -> str:
    return text(value, lang) if value in ("true", "false", "unknown") else value


def provenance_view(inputs: ReportInputs, lang: str) -> dict[str, Any]:
    return {
        "pairs": [
            (text(k, lang), _v("mono", _flag(inputs.provenance[k], lang)))
            for k in PROVENANCE_KEYS
            if inputs.provenance.get(k)
        ],
        "head": [text(k, lang) for k in ("col_model", "run_id", "experiment", "restored")],
        "runs": [
            {
                "model": m,
                "run_id": r.get("run_id", ""),
                "experiment": r.get("experiment", ""),
                "restored": text("true" if r.get("restored") else "false", lang),
            }
            for m, r in inputs.runs.items()
        ],
        "params": inputs.params_text,
    }


def page_view(inputs: ReportInputs, lang: str) -> dict[str, Any]:
    """Everything the template shows, as plain values (text is escaped when rendered)."""
    number = 0

    def figure(png: bytes, caption: str) -> dict[str, str]:
        nonlocal number
        number += 1
        label = f"{text('figure', lang)} {number}"
        return {"src": data_uri(png), "label": label, "caption": caption}

    conv = [figure(png, text(f"cap_{stem}", lang)) for stem, png in inputs.conv_figures]
    first_of_kind: dict[str, int] = {}

    def network_figure(fig: NetworkFigure) -> dict[str, str]:
        # The first figure of a kind explains it; the next ones (other models) refer back.
        if fig.kind in first_of_kind:
            models = ", ".join(fig.models)
            caption = text("cap_again", lang, n=first_of_kind[fig.kind], model=models)
        else:
            first_of_kind[fig.kind] = number + 1
            caption = _caption(fig, lang)
        return figure(fig.png, caption)

    groups = []
    for key, kinds in NETWORK_SECTIONS:
        figs = [f for f in inputs.network_figures if f.kind in kinds]
        if figs:
            groups.append({"id": key, "title": text(key, lang), "figures": []})
            groups[-1]["figures"] = [network_figure(f) for f in figs]
    known = {k for _, kinds in NETWORK_SECTIONS for k in kinds}
    others = [network_figure(f) for f in inputs.network_figures if f.kind not in known]
    if others:
        groups.append({"id": "", "title": "", "figures": others})
    toc = [
        (anchor, text(f"sec_{anchor}", lang))
        for anchor in ("conv", "networks", "comparison", "claims", "sources", "provenance")
    ]
    pad = ""
    if inputs.pad_layers:
        pad = drawpad.section(inputs.pad_layers, lang, inputs.pad_assets[0])
    live = ""
    if inputs.playground:
        live = playground.section(inputs.playground, lang, inputs.playground_assets[0])
    return {
        "lang": lang,
        "t": i18n.section("report", lang),
        # The project's own style sheets (inside <style> nothing is entity-decoded).
        "css": markupsafe.Markup(
            REPORT_CSS.read_text(encoding="utf-8")
            + inputs.pad_assets[1]
            + inputs.playground_assets[1]
        ),
        "toc": toc,
        "conv_figures": conv,
        "summaries": [_summary_view(m, rows, lang) for m, rows in inputs.summaries.items()],
        "network_groups": groups,
        "pad": markupsafe.Markup(pad),  # built and escaped by intro_cnn/reporting/drawpad.py
        "playground": markupsafe.Markup(live),  # built and escaped by reporting/playground.py
        "comparison": comparison_view(inputs.comparison, lang, inputs.spread),
        "claims": [claim_view(c, lang) for c in inputs.claims],
        "sources": sources_view(inputs.sources, lang),
        "provenance": provenance_view(inputs, lang),
    }


def build_html(inputs: ReportInputs, lang: str) -> str:
    """The whole page, self-contained: the template filled with :func:`page_view`. A packaged
    file (template, style sheet) that cannot be read is a :class:`ReportError` as it says."""
    if lang not in i18n.LANGS:
        raise ReportError(f"report.lang must be one of {', '.join(i18n.LANGS)}, got {lang!r}.")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    with raising(ReportError):
        return env.get_template(TEMPLATE).render(page_view(inputs, lang))
