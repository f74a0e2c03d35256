-- Which process runs a run, so a run whose process died is marked failed by the next start.
ALTER TABLE runs ADD COLUMN host VARCHAR;
ALTER TABLE runs ADD COLUMN pid INTEGER;

-- Shard files already loaded into `traces` / `spans`: a night loads only the new ones.
CREATE TABLE shard_ledger (
    path      VARCHAR PRIMARY KEY,
    n_rows    BIGINT NOT NULL,
    run_id    VARCHAR NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
