-- What a night reads grows with its new work, not with the history.

-- Planning. `recipe`: everything a trace's id hashes but its question (method, models, synthesis
-- settings, predictors), so the (question, recipe) pairs not done are found with a join instead of
-- hashing every pair; NULL on traces loaded before, filled in when planning recognizes one.
ALTER TABLE traces ADD COLUMN recipe VARCHAR;
-- Each label's place in the order labels were written (a label written again gets a new one), and per
-- recipe the place up to which every contest question of the filter has a done trace: a night plans
-- only the labels after it.
CREATE SEQUENCE label_seq;
ALTER TABLE question_labels ADD COLUMN seq BIGINT DEFAULT nextval('label_seq');
CREATE TABLE plan_marks (
    recipe         VARCHAR NOT NULL,
    filter         VARCHAR NOT NULL,
    filter_version VARCHAR NOT NULL,
    retry_failed   INTEGER NOT NULL,  -- when a failed trace is done depends on it
    through        BIGINT NOT NULL,
    PRIMARY KEY (recipe, filter, filter_version, retry_failed)
);

-- QA. `measured_key`: the QA settings (`qa_runs.qa_key`) the trace was last measured under, so the
-- traces to measure are found without reading every stored metric. NULL: not measured yet (or
-- replaced by a new attempt since).
ALTER TABLE traces ADD COLUMN measured_key VARCHAR;
UPDATE traces SET measured_key = m.qa_key
FROM (
    SELECT q.subject_id, arg_max(r.qa_key, coalesce(u.started_at, TIMESTAMP '1970-01-01')) AS qa_key
    FROM qa_metrics q JOIN qa_runs r USING (run_id) LEFT JOIN runs u USING (run_id)
    WHERE q.subject_id NOT LIKE '%/%'
    GROUP BY q.subject_id
) m
WHERE traces.trace_id = m.subject_id;
-- Per QA settings, models and method, the count and sum of every stored per-trace metric: the
-- per-method means without joining every stored metric with its trace.
CREATE TABLE qa_sums (
    qa_key        VARCHAR NOT NULL,
    student_model VARCHAR NOT NULL,
    teacher_model VARCHAR NOT NULL,
    method        VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    n             BIGINT NOT NULL,
    total         DOUBLE NOT NULL,
    PRIMARY KEY (qa_key, student_model, teacher_model, method, metric)
);
INSERT INTO qa_sums
SELECT r.qa_key, t.student_model, t.teacher_model, t.method, m.metric, count(m.value), coalesce(sum(m.value), 0)
FROM qa_metrics m JOIN qa_runs r USING (run_id) JOIN traces t ON t.trace_id = m.subject_id
WHERE t.student_model IS NOT NULL AND t.teacher_model IS NOT NULL  -- no config's summary holds them
GROUP BY ALL;
-- The unique index on (subject_id, metric, run_id) grew with the history, and so did its upkeep: at
-- 6M stored metrics, a night's 6k new rows took 0.35 s to insert and the index 1.7 s to checkpoint,
-- against 0.01 s without it. `save_trace_metrics` keeps one value per trace, metric and settings.
DROP INDEX qa_metrics_key;
