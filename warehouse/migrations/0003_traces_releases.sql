-- Synthesized traces, their spans, QA metrics and releases.
CREATE TABLE traces (
    trace_id         VARCHAR PRIMARY KEY,
    question_id      VARCHAR NOT NULL,
    run_id           VARCHAR NOT NULL,
    method           VARCHAR NOT NULL,
    student_model    VARCHAR,
    teacher_model    VARCHAR,
    predictor_ids    VARCHAR,
    text             VARCHAR,
    answer           VARCHAR,
    n_tokens         BIGINT,
    n_tokens_teacher BIGINT,
    n_tokens_student BIGINT,
    n_switches       INTEGER,
    n_wasted_tokens  BIGINT,
    status           VARCHAR NOT NULL,
    error            VARCHAR,
    attempts         INTEGER
);

CREATE TABLE spans (
    trace_id VARCHAR NOT NULL,
    idx      INTEGER NOT NULL,
    author   VARCHAR NOT NULL,          -- teacher | student
    text     VARCHAR NOT NULL,
    n_tokens INTEGER,
    PRIMARY KEY (trace_id, idx)
);

CREATE TABLE qa_metrics (
    subject_id VARCHAR NOT NULL,         -- a trace id, or run/method for aggregates
    metric     VARCHAR NOT NULL,
    value      DOUBLE,
    run_id     VARCHAR NOT NULL
);

CREATE TABLE releases (
    release_id        VARCHAR PRIMARY KEY,
    name              VARCHAR NOT NULL UNIQUE,
    parent_release_id VARCHAR,
    created_at        TIMESTAMP NOT NULL,
    n_rows            BIGINT NOT NULL,
    content_hash      VARCHAR NOT NULL,
    manifest_json     VARCHAR NOT NULL,
    hub_repo          VARCHAR,
    hub_revision      VARCHAR
);

CREATE TABLE release_items (
    release_id VARCHAR NOT NULL,
    trace_id   VARCHAR NOT NULL,
    PRIMARY KEY (release_id, trace_id)
);
