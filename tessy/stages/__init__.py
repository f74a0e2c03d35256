"""The stage layer: one module per pipeline stage, each with one entry function (`run`, or
`ingest_source` for ingest) that does the stage's work with the library (`tessy/`) and the storage
(`warehouse/`). The `tessy` CLI and the Prefect tasks call the same functions and add only printing,
logging, artifacts and retries. No module here imports Prefect. docs/architecture.md lists each
stage's contract: what it reads and writes, the servers it needs, and when it raises."""
