-- Each QA run's measurement settings (`qa_key`: the QA config and how code ran), so a later run with
-- the same settings reuses per-trace metrics instead of measuring every trace again.
CREATE TABLE qa_runs (
    run_id VARCHAR PRIMARY KEY,
    qa_key VARCHAR NOT NULL
);

CREATE UNIQUE INDEX qa_metrics_key ON qa_metrics (subject_id, metric, run_id);
