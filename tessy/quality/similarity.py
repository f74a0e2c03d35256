"""The paper's output similarity: TF-IDF bag-of-words vectors over student-tokenizer tokens, and the
mean cosine similarity between responses to the same question."""

from __future__ import annotations

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


def similarity_to_reference(tfidf: Tfidf, reference: str = REFERENCE_METHOD) -> dict[str, float]:
    """Mean cosine similarity of each method's responses to the reference method's responses to the same
    question, over all such pairs. The reference itself is scored on pairs of distinct responses, and
    is left out when no question has two; a method sharing no question with the reference is left out."""
    rows = pl.DataFrame(
        {"row": range(len(tfidf.trace_ids)), "question_id": tfidf.question_ids, "method": tfidf.methods}
    )
    refs = rows.filter(pl.col("method") == reference).group_by("question_id").agg(ref_rows=pl.col("row"))
    pairs: dict[str, list[tuple[int, int]]] = {}
    for method, row, ref_rows in (
        rows.join(refs, on="question_id").select("method", "row", "ref_rows").iter_rows()
    ):
        pairs.setdefault(method, []).extend((row, r) for r in ref_rows if r != row)
    return {method: _mean_cosine(tfidf.matrix, p) for method, p in sorted(pairs.items()) if p}


def _mean_cosine(matrix: sparse.csr_matrix, pairs: list[tuple[int, int]]) -> float:
    a, b = (np.fromiter(x, dtype=np.int64) for x in zip(*pairs, strict=True))
    return float(np.asarray(matrix[a].multiply(matrix[b]).sum(axis=1)).mean())
