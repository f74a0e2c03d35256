-- Every token the models generated for a trace, the attempts that failed included (each model's own
-- tokenizer), and how many of them the failed attempts generated. NULL for traces loaded before.
ALTER TABLE traces ADD COLUMN n_generated_tokens BIGINT;
ALTER TABLE traces ADD COLUMN n_failed_tokens BIGINT;
