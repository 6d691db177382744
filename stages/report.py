"""Stage ``report``: one self-contained HTML page with everything the pipeline produced.

The page follows the notebook: the convolution demos, then the networks (architectures,
training curves, filters, feature maps, the batch-normalisation comparison), then what the
notebook does not show: confusion matrices, the most confident mistakes, accuracy against size,
the comparison table and the verdicts on the notebook's two claims. It ends with the data
sources (with a warning when the demo image is a fallback) and the provenance of the run.

The page opens offline: images are embedded as base64 ``data:`` URIs, the CSS is inline, and
nothing is loaded from elsewhere. The one script is the drawing pad's (stages/drawpad.py),
inline with its weights; without JavaScript its section stays hidden. Every string read from a
file is HTML-escaped. Text is in ``report.lang`` (es, the notebook's language, or en).
"""

from __future__ import annotations

import base64
import csv
import html
import importlib.metadata
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages import claims, cli, config, drawpad, files, i18n, tracking

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)


# The convolution stage's figures, in the notebook's order (file stems under CONV_DIR).
CONV_FIGURES = (
    "01_random_walk",
    "02_gaussian_1d",
    "03_image",
    "04_gaussian_2d",
    "05_blurred",
    "06_grey",
    "07_gradient_filter",
    "08_edges",
)

# Network figure kinds (index.json "kind") grouped into the page's sections, in order.
NETWORK_SECTIONS = (
    ("sec_training", ("history", "history_zoom")),
    ("sec_filters", ("filters",)),
    ("sec_feature_maps", ("feature_maps",)),
    ("sec_bn", ("bn_comparison",)),
    ("sec_confusion", ("confusion",)),
    ("sec_wrong", ("wrong",)),
    ("sec_size", ("accuracy_vs_params",)),
)

# Provenance tags shown, in order (tracking.provenance_tags() plus the Keras version).
PROVENANCE_KEYS = ("git_commit", "git_dirty", "dvc_exp_name", "python", "keras")


CSS = """
body { font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f;
  background: #fff; margin: 0; line-height: 1.5; }
main { max-width: 960px; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
h1 { font-size: 2rem; margin: 0.5rem 0 0; }
.subtitle { color: #555; margin: 0.25rem 0 1.5rem; font-size: 1.1rem; }
h2 { font-size: 1.5rem; border-bottom: 2px solid #d0d7de; padding-bottom: 0.25rem;
  margin-top: 2.5rem; }
h3 { font-size: 1.2rem; margin-top: 2rem; }
nav ol { columns: 2; margin: 0.5rem 0 1rem; }
figure { margin: 1.5rem 0; break-inside: avoid; page-break-inside: avoid; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto;
  border: 1px solid #e5e5e5; }
figcaption { font-size: 0.95rem; color: #333; margin-top: 0.5rem; }
figcaption b { color: #000; }
.tables { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
  gap: 0 1.5rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.75rem 0; font-size: 0.92rem; }
caption { text-align: left; font-weight: bold; padding: 0.25rem 0; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.55rem; vertical-align: top; }
th { background: #f3f5f7; text-align: left; font-weight: bold; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em;
  overflow-wrap: anywhere; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; padding: 0.75rem; font-size: 0.82rem;
  white-space: pre-wrap; overflow-wrap: anywhere; }
.claim { border: 1px solid #d0d7de; border-left-width: 6px; padding: 0.5rem 1rem;
  margin: 1rem 0; break-inside: avoid; }
.claim.holds { border-left-color: #1a7f37; }
.claim.partly { border-left-color: #bf8700; }
.claim.fails { border-left-color: #cf222e; }
.claim.unchecked { border-left-color: #8c959f; }
.verdict { font-weight: bold; }
.holds .verdict { color: #1a7f37; } .partly .verdict { color: #9a6700; }
.fails .verdict { color: #cf222e; }
td code { white-space: nowrap; }
details { margin: 1rem 0; } summary { cursor: pointer; }
.warning { background: #fff4e5; border: 2px solid #d97706; padding: 0.75rem 1rem;
  margin: 1rem 0; }
.note { color: #555; font-size: 0.92rem; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }
dl.kv dt { font-weight: bold; }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
@media print { main { max-width: none; } nav { display: none; } h2 { break-after: avoid; } }
"""

VERDICT_CLASS = {
    claims.HOLDS: "holds",
    claims.PARTLY: "partly",
    claims.DOES_NOT_HOLD: "fails",
    claims.NOT_CHECKED: "unchecked",
}


class ReportError(RuntimeError):
    """An input of the report stage is missing or malformed (the message says the fix)."""


@dataclass(frozen=True)
class LayerRow:
    """One line of a model summary table."""

    name: str
    type: str
    output_shape: str
    params: int


@dataclass(frozen=True)
class NetworkFigure:
    """A figure of the visualize stage, as listed in its ``index.json``."""

    file: str
    kind: str
    models: tuple[str, ...]
    png: bytes


@dataclass(frozen=True)
class ReportInputs:
    """Everything the page shows, already read from disk."""

    conv_figures: Sequence[tuple[str, bytes]]  # (file stem, PNG bytes), in CONV_FIGURES order
    network_figures: Sequence[NetworkFigure]
    summaries: Mapping[str, Sequence[LayerRow]]  # per model, in params order
    comparison: Sequence[Mapping[str, str]]  # rows of reports/comparison.csv
    claims: Sequence[Mapping[str, Any]]  # reports/evaluate/claims.json
    sources: Mapping[str, Any]  # data/raw/sources.json
    runs: Mapping[str, Mapping[str, Any]]  # reports/evaluate/runs.json
    params_text: str  # params.yaml as written
    provenance: Mapping[str, str] = field(default_factory=dict)
    # The drawing pad: the layers of drawpad.PAD_MODEL, its script and style (empty: no pad).
    pad_layers: Sequence[drawpad.PadLayer] = ()
    pad_assets: tuple[str, str] = ("", "")


# --------------------------------------------------------------------------------------
# Pure core: text and HTML
# --------------------------------------------------------------------------------------
def text(key: str, lang: str, **fields: Any) -> str:
    """The page's text ``key`` in ``lang`` (the ``report`` texts); ``fields`` fill it."""
    return i18n.text("report", key, lang, **fields)


def has_text(key: str, lang: str) -> bool:
    return i18n.has("report", key, lang)


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def layer_rows(model: keras.Model) -> list[LayerRow]:
    """The model summary as rows: layer name, class, output shape without the batch axis,
    parameter count."""
    rows = []
    for layer in model.layers:
        shape = tuple(layer.output.shape)[1:]
        rows.append(
            LayerRow(
                name=layer.name,
                type=layer.__class__.__name__,
                output_shape=" × ".join(str(d) for d in shape),
                params=int(layer.count_params()),
            )
        )
    return rows


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(number: int, png: bytes, caption: str, lang: str) -> str:
    label = f"{text('figure', lang)} {number}"
    return (
        f'<figure><img src="{data_uri(png)}" alt="{esc(label)}">'
        f"<figcaption><b>{esc(label)}.</b> {esc(caption)}</figcaption></figure>"
    )


def _caption(fig: NetworkFigure, lang: str) -> str:
    models = fig.models or ("",)
    key = f"cap_{fig.kind}"
    if not has_text(key, lang):
        return fig.file
    return text(key, lang, model=", ".join(models), plain=models[0], bn=models[-1])


def _summary_table(model: str, rows: Sequence[LayerRow], lang: str) -> str:
    total = sum(r.params for r in rows)
    head = "".join(
        f"<th>{esc(text(k, lang))}</th>"
        for k in ("col_layer", "col_type", "col_shape", "col_params")
    )
    body = "".join(
        f"<tr><td><code>{esc(r.name)}</code></td><td>{esc(r.type)}</td>"
        f'<td class="num">{esc(r.output_shape)}</td>'
        f'<td class="num">{i18n.thousands(r.params)}</td></tr>'
        for r in rows
    )
    cap = esc(text("total_params", lang, model=model, n=i18n.thousands(total)))
    return (
        f'<div class="scroll"><table><caption>{cap}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


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


def _cell(column: str, value: str) -> str:
    fmt = _COLUMN_FORMATS.get(column)
    if fmt is None:
        return f"<td>{esc(value)}</td>"
    try:
        number = float(value)
    except ValueError:
        return f"<td>{esc(value)}</td>"
    shown = i18n.thousands(round(number)) if fmt == "int" else fmt.format(number)
    return f'<td class="num">{esc(shown)}</td>'


def _column_title(column: str, lang: str) -> str:
    key = "col_params" if column == "params" else f"col_{column}"
    return text(key, lang) if has_text(key, lang) else column


def comparison_table(rows: Sequence[Mapping[str, str]], lang: str) -> str:
    """The comparison table with one column per model and one row per measure: nine measures
    side by side would not fit a page, four or five models do."""
    if not rows:
        return ""
    measures = [c for c in rows[0] if c != "model"]
    head = f"<th>{esc(text('col_model', lang))}</th>" + "".join(
        f"<th><code>{esc(row.get('model', ''))}</code></th>" for row in rows
    )
    body = "".join(
        f"<tr><th>{esc(_column_title(m, lang))}</th>"
        + "".join(_cell(m, row.get(m, "")) for row in rows)
        + "</tr>"
        for m in measures
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        f'</table></div><p class="note">{esc(text("comparison_note", lang))}</p>'
    )


def _claim_block(entry: Mapping[str, Any], lang: str) -> str:
    """One claim of claims.json, every sentence from the catalogue in ``lang``."""
    try:
        claim = claims.Claim.from_json(entry)
        statement = claims.statement(claim.id, lang)
        reason = claims.reason(claim, lang)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(
            f"{config.EVAL_CLAIMS}: a claim this report cannot read ({exc}): rerun "
            "`dvc repro evaluate`."
        ) from None
    items = "".join(
        f"<li>{esc(claims.part_name(part, lang))}: <b>{esc(claims.answer(value, lang))}</b></li>"
        for part, value in claims.ordered_parts(claim)
    )
    parts_html = f"<ul>{items}</ul>" if items else ""
    css = VERDICT_CLASS.get(claim.verdict, "unchecked")
    return (
        f'<div class="claim {css}"><p><b>{esc(text("claim", lang))}:</b> {esc(statement)}</p>'
        f'<p><b>{esc(text("verdict", lang))}:</b> <span class="verdict">'
        f"{esc(claims.verdict_name(claim.verdict, lang))}</span></p>{parts_html}"
        f"<p>{esc(reason)}</p></div>"
    )


def _kv(pairs: Sequence[tuple[str, str]]) -> str:
    items = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs)
    return f'<dl class="kv">{items}</dl>'


def _failed_list(failed: Sequence[Mapping[str, Any]]) -> str:
    items = "".join(
        f"<li><code>{esc(f.get('source', ''))}</code> "
        f'(<span class="mono">{esc(f.get("location") or f.get("url") or "")}</span>): '
        f"{esc(f.get('reason', ''))}</li>"
        for f in failed
    )
    return f"<ul>{items}</ul>"


def sources_section(sources: Mapping[str, Any], lang: str) -> str:
    """Where MNIST and the demo image came from; a warning box if the image is the fallback."""
    out = []
    image = sources.get("image") or {}
    if image.get("fallback"):
        first = (image.get("failed") or [{}])[0]
        out.append(
            '<div class="warning" role="alert">'
            + esc(
                text(
                    "fallback_warning",
                    lang,
                    url=first.get("url", ""),
                    file=image.get("url", image.get("file", "")),
                )
            )
            + "</div>"
        )
    mnist = sources.get("mnist") or {}
    pairs = [
        (text("source", lang), f"<code>{esc(mnist.get('source', ''))}</code>"),
        (text("location", lang), f'<span class="mono">{esc(mnist.get("location", ""))}</span>'),
    ]
    if mnist.get("set_by"):
        pairs.append((text("set_by", lang), f"<code>{esc(mnist['set_by'])}</code>"))
    if mnist.get("file_sha256"):
        pairs.append(
            (text("file_sha256", lang), f'<span class="mono">{esc(mnist["file_sha256"])}</span>')
        )
    if mnist.get("content_sha256"):
        pairs.append((text("content_check", lang), esc(text("content_ok", lang))))
    if mnist.get("failed"):
        pairs.append((text("failed_sources", lang), _failed_list(mnist["failed"])))
    out.append(f"<h3>{esc(text('mnist', lang))}</h3>{_kv(pairs)}")
    pairs = [
        (text("source", lang), f"<code>{esc(image.get('source', ''))}</code>"),
        (text("location", lang), f'<span class="mono">{esc(image.get("url", ""))}</span>'),
        (text("image_file", lang), f"<code>{esc(image.get('file', ''))}</code>"),
    ]
    if image.get("size"):
        pairs.append((text("image_size", lang), esc(" × ".join(str(v) for v in image["size"]))))
    if image.get("sha256"):
        pairs.append(
            (text("file_sha256", lang), f'<span class="mono">{esc(image["sha256"])}</span>')
        )
    if image.get("failed"):
        pairs.append((text("failed_sources", lang), _failed_list(image["failed"])))
    out.append(f"<h3>{esc(text('demo_image', lang))}</h3>{_kv(pairs)}")
    return "".join(out)


def _flag(value: str, lang: str) -> str:
    return text(value, lang) if value in ("true", "false", "unknown") else value


def provenance_section(inputs: ReportInputs, lang: str) -> str:
    pairs = [
        (text(k, lang), f'<span class="mono">{esc(_flag(inputs.provenance[k], lang))}</span>')
        for k in PROVENANCE_KEYS
        if inputs.provenance.get(k)
    ]
    head = "".join(
        f"<th>{esc(text(k, lang))}</th>" for k in ("col_model", "run_id", "experiment", "restored")
    )
    rows = "".join(
        f'<tr><td><code>{esc(m)}</code></td><td class="mono">{esc(r.get("run_id", ""))}</td>'
        f"<td>{esc(r.get('experiment', ''))}</td>"
        f"<td>{esc(text('true' if r.get('restored') else 'false', lang))}</td></tr>"
        for m, r in inputs.runs.items()
    )
    runs = (
        f'<h3>{esc(text("mlflow_runs", lang))}</h3><div class="scroll"><table><thead><tr>{head}'
        f"</tr></thead><tbody>{rows}</tbody></table></div>"
        f'<p class="note">{esc(text("restored_note", lang))}</p>'
    )
    params = (
        f"<details><summary><b>{esc(text('params', lang))}</b></summary>"
        f"<pre>{esc(inputs.params_text)}</pre></details>"
    )
    return _kv(pairs) + runs + params


def pad_section(inputs: ReportInputs, lang: str) -> str:
    """The interactive drawing pad (hidden without JavaScript), or nothing without a model."""
    if not inputs.pad_layers:
        return ""
    return drawpad.section(inputs.pad_layers, lang, inputs.pad_assets[0])


def build_html(inputs: ReportInputs, lang: str) -> str:
    """The whole page, self-contained."""
    if lang not in i18n.LANGS:
        raise ReportError(f"report.lang must be one of {', '.join(i18n.LANGS)}, got {lang!r}.")
    number = 0
    sections: list[tuple[str, str, str]] = []  # (anchor, title, body)

    body = [f"<p>{esc(text('conv_intro', lang))}</p>"]
    for stem, png in inputs.conv_figures:
        number += 1
        body.append(_figure(number, png, text(f"cap_{stem}", lang), lang))
    sections.append(("conv", text("sec_conv", lang), "".join(body)))

    tables = "".join(_summary_table(m, rows, lang) for m, rows in inputs.summaries.items())
    net = [
        f"<p>{esc(text('networks_intro', lang))}</p>",
        f'<h3 id="architectures">{esc(text("sec_architectures", lang))}</h3>',
        f'<div class="tables">{tables}</div>',
    ]
    first_of_kind: dict[str, int] = {}

    def network_figure(fig: NetworkFigure) -> str:
        # The first figure of a kind explains it; the next ones (other models) refer back.
        nonlocal number
        number += 1
        if fig.kind in first_of_kind:
            models = ", ".join(fig.models)
            caption = text("cap_again", lang, n=first_of_kind[fig.kind], model=models)
        else:
            first_of_kind[fig.kind] = number
            caption = _caption(fig, lang)
        return _figure(number, fig.png, caption, lang)

    for key, kinds in NETWORK_SECTIONS:
        figs = [f for f in inputs.network_figures if f.kind in kinds]
        if not figs:
            continue
        net.append(f'<h3 id="{key}">{esc(text(key, lang))}</h3>')
        net += [network_figure(fig) for fig in figs]
    known = {k for _, kinds in NETWORK_SECTIONS for k in kinds}
    net += [network_figure(fig) for fig in inputs.network_figures if fig.kind not in known]
    sections.append(("networks", text("sec_networks", lang), "".join(net)))

    sections.append(
        ("comparison", text("sec_comparison", lang), comparison_table(inputs.comparison, lang))
    )
    sections.append(
        ("claims", text("sec_claims", lang), "".join(_claim_block(c, lang) for c in inputs.claims))
    )
    sections.append(("sources", text("sec_sources", lang), sources_section(inputs.sources, lang)))
    sections.append(("provenance", text("sec_provenance", lang), provenance_section(inputs, lang)))

    toc = "".join(f'<li><a href="#{a}">{esc(t)}</a></li>' for a, t, _ in sections)
    content = "".join(
        f'<section id="{a}"><h2>{esc(t)}</h2>{b}</section>'
        + (pad_section(inputs, lang) if a == "networks" else "")
        for a, t, b in sections
    )
    title = esc(text("title", lang))
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{CSS}{inputs.pad_assets[1]}</style>\n</head>\n<body>\n<main>\n"
        f'<h1>{title}</h1><p class="subtitle">{esc(text("subtitle", lang))}</p>'
        f"<p>{esc(text('intro', lang))}</p>"
        f"<nav><b>{esc(text('contents', lang))}</b><ol>{toc}</ol></nav>\n"
        f"{content}\n</main>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------
# Edge: reading inputs
# --------------------------------------------------------------------------------------
def _need(path: Path, fix: str) -> Path:
    if not path.exists():
        raise ReportError(f"{path} not found: run `{fix}` first.")
    return path


def read_conv_figures(directory: Path = config.CONV_DIR) -> list[tuple[str, bytes]]:
    missing = [s for s in CONV_FIGURES if not (directory / f"{s}.png").exists()]
    if missing:
        raise ReportError(
            f"{directory} lacks {', '.join(f'{s}.png' for s in missing)}: "
            "run `dvc repro convolutions` first."
        )
    return [(s, (directory / f"{s}.png").read_bytes()) for s in CONV_FIGURES]


def read_network_figures(directory: Path = config.NETWORK_DIR) -> list[NetworkFigure]:
    index = files.read_json(_need(directory / config.FIGURES_INDEX, "dvc repro visualize"))
    out = []
    for entry in index.get("figures", []):
        path = directory / entry["file"]
        if not path.exists():
            raise ReportError(
                f"{path} is listed in {config.FIGURES_INDEX} but missing: rerun visualize."
            )
        out.append(
            NetworkFigure(
                entry["file"], entry["kind"], tuple(entry.get("models", ())), path.read_bytes()
            )
        )
    return out


def read_comparison(path: Path = config.COMPARISON_CSV) -> list[dict[str, str]]:
    with open(_need(path, "dvc repro evaluate"), newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def model_summaries(names: Sequence[str]) -> dict[str, list[LayerRow]]:
    """Each saved model's layer table (loads the Keras files)."""
    import keras

    out = {}
    for name in names:
        path = _need(config.model_path(name), f"dvc repro train@{name}")
        out[name] = layer_rows(keras.saving.load_model(path, compile=False))
    return out


def read_pad(names: Sequence[str]) -> tuple[list[drawpad.PadLayer], tuple[str, str]]:
    """The drawing pad's model layers and assets; no pad when its model is not in params."""
    if drawpad.PAD_MODEL not in names:
        return [], ("", "")
    path = _need(config.model_path(drawpad.PAD_MODEL), f"dvc repro train@{drawpad.PAD_MODEL}")
    return drawpad.read_keras_file(path), drawpad.read_assets()


def read_inputs(names: Sequence[str], params_path: Path = Path(config.PARAMS_FILE)) -> ReportInputs:
    """Read every input of the page (the Keras models included; the drawing pad's last)."""
    inputs = ReportInputs(
        conv_figures=read_conv_figures(),
        network_figures=read_network_figures(),
        summaries=model_summaries(names),
        comparison=read_comparison(),
        claims=files.read_json(_need(config.EVAL_CLAIMS, "dvc repro evaluate")),
        sources=files.read_json(_need(config.RAW_SOURCES, "dvc repro download")),
        runs=files.read_json(_need(config.EVAL_RUNS, "dvc repro evaluate")),
        params_text=params_path.read_text(encoding="utf-8"),
        provenance={**tracking.provenance_tags(), "keras": importlib.metadata.version("keras")},
    )
    pad_layers, pad_assets = read_pad(names)
    return replace(inputs, pad_layers=pad_layers, pad_assets=pad_assets)


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with cli.stage("report"):
        params = config.load_params()
        try:
            inputs = read_inputs(list(params.models))
            page = build_html(inputs, params.report.lang)
        except (ReportError, drawpad.PadError, OSError, ValueError, KeyError) as exc:
            raise cli.StageError(str(exc)) from exc
        files.write_text(config.REPORT_HTML, page)
    n_figures = len(inputs.conv_figures) + len(inputs.network_figures)
    log.info(
        "%s: %d figures, %d models, %.1f MB (%s)",
        config.REPORT_HTML,
        n_figures,
        len(inputs.summaries),
        len(page.encode("utf-8")) / 1e6,
        params.report.lang,
    )


if __name__ == "__main__":
    main()
