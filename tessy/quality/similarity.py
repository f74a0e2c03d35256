"""The paper's output similarity: TF-IDF bag-of-words vectors over student-tokenizer tokens, and the
cosine similarity between responses to the same question (per trace; a method's is their mean)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from sklearn.feature_extraction.text import TfidfVectorizer

from tessy.quality.traces import REFERENCE_METHOD, ok_traces, require_columns

if TYPE_CHECKING:
    from scipy import sparse
    from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class Tfidf:
    """L2-normalized TF-IDF rows (so a dot product is a cosine), one per ok trace, in frame order."""

    matrix: sparse.csr_matrix
    trace_ids: list[str]
    question_ids: list[str]
    methods: list[str]


def tfidf_vectors(frame: pl.DataFrame, tokenizer: PreTrainedTokenizerBase) -> Tfidf:
    """TF-IDF of every ok response's full text, tokenized by the student's tokenizer, fitted on these
    responses."""
    require_columns(frame, ["trace_id", "question_id", "method", "text", "status"], "TF-IDF")
    ok = ok_traces(frame)
    if ok.height == 0:
        raise ValueError("TF-IDF needs at least one ok trace")
    # The fast tokenizer encodes the whole batch in Rust; its token strings are the bag's words.
    # The student's token strings are the bag's words; documents are tokenized one at a time as the
    # vectorizer reads them, so memory does not grow with the corpus's token count.
    vectorizer = TfidfVectorizer(analyzer=tokenizer.tokenize, lowercase=False)
    return Tfidf(
        matrix=vectorizer.fit_transform(ok["text"]).tocsr(),
        trace_ids=ok["trace_id"].to_list(),
        question_ids=ok["question_id"].to_list(),
        methods=ok["method"].to_list(),
    )


def similarity_per_trace(
    tfidf: Tfidf, subjects: Collection[str] | None = None, reference: str = REFERENCE_METHOD
) -> pl.DataFrame:
    """Long frame (subject_id=trace_id, metric="similarity_to_student", value): each trace's mean cosine
    similarity to the reference method's other responses to the same question, for the `subjects`
    (default: every trace). A trace whose question has no other reference response gets no row, so the
    reference itself is scored only where a question has two of its responses."""
    rows = pl.DataFrame(
        {
            "row": range(len(tfidf.trace_ids)),
            "subject_id": tfidf.trace_ids,
            "question_id": tfidf.question_ids,
            "method": tfidf.methods,
        }
    )
    targets = rows if subjects is None else rows.filter(pl.col("subject_id").is_in(list(subjects)))
    refs = rows.filter(pl.col("method") == reference).select("question_id", ref="row")
    pairs = targets.join(refs, on="question_id").filter(pl.col("row") != pl.col("ref"))
    a, b = pairs["row"].to_numpy(), pairs["ref"].to_numpy()
    cosine = np.asarray(tfidf.matrix[a].multiply(tfidf.matrix[b]).sum(axis=1)).ravel() if len(a) else []
    return (
        pairs.with_columns(value=pl.Series(cosine, dtype=pl.Float64))
        .group_by("subject_id", maintain_order=True)
        .agg(pl.col("value").mean())
        .select("subject_id", metric=pl.lit("similarity_to_student"), value="value")
    )
