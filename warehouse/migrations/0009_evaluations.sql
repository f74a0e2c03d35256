-- What fine-tuning the student on a method's traces did to it: held-out pass@1 per (run, method,
-- seed), the base's own score under method 'base' (computed once per base and benchmark, then reused).
CREATE TABLE evaluations (
    evaluation_id VARCHAR PRIMARY KEY,  -- sha256 of run, method, base, seed, benchmark and settings
    run_id VARCHAR NOT NULL,            -- the evaluate run that measured it
    release_id VARCHAR,                 -- the release it evaluated, when one was given
    method VARCHAR NOT NULL,            -- 'base' or a synthesis method
    base_model VARCHAR NOT NULL,
    base_hash VARCHAR NOT NULL,         -- content hash of the base model's weights
    seed INTEGER NOT NULL,
    benchmark VARCHAR NOT NULL,         -- the benchmark file
    benchmark_hash VARCHAR NOT NULL,
    settings_hash VARCHAR NOT NULL,     -- fine-tune and sampling settings
    n_train INTEGER NOT NULL,           -- traces fine-tuned on (0 for the base)
    n INTEGER NOT NULL,                 -- problems
    k INTEGER NOT NULL,                 -- samples per problem
    pass_at_1 DOUBLE NOT NULL,
    ci95 DOUBLE,                        -- half-width of the 95% interval over problems
    train_first_loss DOUBLE,
    train_final_loss DOUBLE,
    train_steps INTEGER,
    per_group_json VARCHAR NOT NULL,    -- pass@1 per benchmark group (family)
    created_at TIMESTAMP NOT NULL
);
