-- `traces` and `spans` without primary keys. DuckDB writes a table's whole ART index again at every
-- checkpoint, so a night that adds 1,000 traces to 1M rewrote about 23 MB of trace-id index, and one
-- that adds 15k spans to 15M rewrote 180 MB (1.1 s), growing with the history. The loader keeps a
-- trace id and a (trace, span index) once: it takes a shard's trace only when it is new or replaces
-- a failed one, with its spans.
CREATE TABLE traces_unindexed (
    trace_id           VARCHAR NOT NULL,
    question_id        VARCHAR NOT NULL,
    run_id             VARCHAR NOT NULL,
    method             VARCHAR NOT NULL,
    student_model      VARCHAR,
    teacher_model      VARCHAR,
    predictor_ids      VARCHAR,
    text               VARCHAR,
    answer             VARCHAR,
    n_tokens           BIGINT,
    n_tokens_teacher   BIGINT,
    n_tokens_student   BIGINT,
    n_switches         INTEGER,
    n_wasted_tokens    BIGINT,
    status             VARCHAR NOT NULL,
    error              VARCHAR,
    attempts           INTEGER,
    nights             INTEGER DEFAULT 1,
    n_generated_tokens BIGINT,
    n_failed_tokens    BIGINT,
    recipe             VARCHAR,
    measured_key       VARCHAR
);
INSERT INTO traces_unindexed SELECT * FROM traces;
DROP TABLE traces;
ALTER TABLE traces_unindexed RENAME TO traces;

CREATE TABLE spans_unindexed (
    trace_id VARCHAR NOT NULL,
    idx      INTEGER NOT NULL,
    author   VARCHAR NOT NULL,          -- teacher | student
    text     VARCHAR NOT NULL,
    n_tokens INTEGER
);
INSERT INTO spans_unindexed SELECT * FROM spans;
DROP TABLE spans;
ALTER TABLE spans_unindexed RENAME TO spans;
