"""Payments: PSP, pay options, refunds, bank statements and exports."""
