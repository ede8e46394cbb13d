"""Bank statements: CAMT.053 and MT940 import, matching lines to invoices, the to-be-processed queue."""
