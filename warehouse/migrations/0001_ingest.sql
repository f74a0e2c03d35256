-- Runs and questions: what the ingest stage writes.
CREATE TABLE runs (
    run_id       VARCHAR PRIMARY KEY,
    kind         VARCHAR NOT NULL,
    config_json  VARCHAR,
    config_hash  VARCHAR,
    code_version VARCHAR,
    flow_run_id  VARCHAR,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    status       VARCHAR NOT NULL,
    stats_json   VARCHAR
);

CREATE TABLE questions (
    question_id   VARCHAR PRIMARY KEY,  -- sha256 of the normalized text
    text          VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,      -- where it was first seen
    source_id     VARCHAR,
    domain        VARCHAR,
    difficulty    VARCHAR,
    metadata_json VARCHAR,
    first_run_id  VARCHAR NOT NULL
);

-- Every further (source, row) a question was seen in after the one it was stored from.
CREATE TABLE question_sources (
    question_id VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    source_id   VARCHAR NOT NULL,
    run_id      VARCHAR NOT NULL,
    PRIMARY KEY (question_id, source, source_id)
);

CREATE TABLE quarantine (
    run_id  VARCHAR NOT NULL,
    source  VARCHAR NOT NULL,
    locator VARCHAR NOT NULL,
    reason  VARCHAR NOT NULL,
    raw     VARCHAR
);
