"""The columns a scored row gains, per task, as one Arrow schema.

Head tasks (intent, sentiment, urgency): `<task>` (the label, null when the head abstained),
`<task>_probability` (the calibrated probability of the top label), `<task>_probabilities`
(every label's probability, a JSON object), `<task>_reason` (why it abstained) and
`<task>_model_version` (the registered version, or `bundle/<heads_key>`). Language: the code,
its probability, reason and detector version. Entities: a JSON list and the extractor's
version. `encoder_version` and `analysis_notes` (a JSON list, null when empty) apply to the
whole row."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from models.service import Analysis, LabelResult

HEAD_TASKS = ("intent", "sentiment", "urgency")
ROW = "_row"  # position of the row among the good rows of the input; dropped on output


def score_schema(tasks: Sequence[str]) -> pa.Schema:
    """The score columns of `tasks`, after the row position."""
    fields: list[pa.Field] = [pa.field(ROW, pa.int64())]
    for task in tasks:
        if task in HEAD_TASKS:
            fields += [
                pa.field(task, pa.string()),
                pa.field(f"{task}_probability", pa.float64()),
                pa.field(f"{task}_probabilities", pa.string()),
                pa.field(f"{task}_reason", pa.string()),
                pa.field(f"{task}_model_version", pa.string()),
            ]
        elif task == "language":
            fields += [
                pa.field("language", pa.string()),
                pa.field("language_probability", pa.float64()),
                pa.field("language_reason", pa.string()),
                pa.field("language_model_version", pa.string()),
            ]
        elif task == "entities":
            fields += [
                pa.field("entities", pa.string()),
                pa.field("entities_model_version", pa.string()),
            ]
    if any(t in HEAD_TASKS for t in tasks):
        fields.append(pa.field("encoder_version", pa.string()))
    fields.append(pa.field("analysis_notes", pa.string()))
    return pa.schema(fields)


def score_columns(
    rows: Sequence[int],
    analyses: Sequence[Analysis],
    tasks: Sequence[str],
    versions: dict[str, str],
    other_versions: dict[str, str],
) -> pa.Table:
    """One Arrow row per analysis. `versions`: head task → the version the run resolved;
    `other_versions`: "language" and "entities" → their detector's version."""
    schema = score_schema(tasks)
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    columns[ROW] = list(rows)
    heads = [t for t in tasks if t in HEAD_TASKS]
    for analysis in analyses:
        for task in heads:
            _label(columns, task, getattr(analysis, task), versions[task])
        if "language" in tasks:
            found = analysis.language
            columns["language"].append(found.code)
            columns["language_probability"].append(found.confidence)
            columns["language_reason"].append(found.reason)
            columns["language_model_version"].append(found.model_version)
        if "entities" in tasks:
            entities = [
                {"type": e.type, "text": e.text, "start": e.start, "end": e.end,
                 "normalized": e.normalized, "source": e.source}
                for e in analysis.entities
            ]  # fmt: skip
            columns["entities"].append(_json(entities))
            columns["entities_model_version"].append(other_versions.get("entities"))
        if heads:
            columns["encoder_version"].append(analysis.encoder_version)
        columns["analysis_notes"].append(_json(list(analysis.notes)) if analysis.notes else None)
    return pa.Table.from_pydict(columns, schema=schema)


def _label(columns: dict[str, list[Any]], task: str, result: LabelResult, version: str) -> None:
    answered = result.model_version != "none"  # "none": the head did not run (binary text)
    columns[task].append(result.label)
    columns[f"{task}_probability"].append(result.confidence if answered else None)
    columns[f"{task}_probabilities"].append(_json(result.probabilities) if answered else None)
    columns[f"{task}_reason"].append(result.reason)
    columns[f"{task}_model_version"].append(version if answered else None)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
