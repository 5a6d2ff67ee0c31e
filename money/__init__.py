"""Money correctness: a client-side ledger of every money-moving request and the end-of-run
reconciliation against what the servers recorded."""
