"""Read-only reports over the ledger and the dunning state (the daily digest)."""
