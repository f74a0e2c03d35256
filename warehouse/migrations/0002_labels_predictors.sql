-- Contest-filter decisions and trained boundary predictors.
CREATE TABLE question_labels (
    question_id    VARCHAR NOT NULL,
    filter         VARCHAR NOT NULL,
    filter_version VARCHAR NOT NULL,
    is_contest     BOOLEAN,             -- NULL = undecided
    score          DOUBLE,
    rationale      VARCHAR,
    run_id         VARCHAR NOT NULL,
    PRIMARY KEY (question_id, filter, filter_version)
);

CREATE TABLE predictors (
    predictor_id VARCHAR PRIMARY KEY,
    role         VARCHAR NOT NULL,      -- teacher | student
    base_model   VARCHAR NOT NULL,
    train_rows   BIGINT,
    data_hash    VARCHAR,
    metrics_json VARCHAR,
    path         VARCHAR NOT NULL,
    run_id       VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL
);
