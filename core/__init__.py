"""The receivables domain. Imports no edge framework (see DESIGN.md)."""
