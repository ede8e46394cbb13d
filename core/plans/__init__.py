"""Payment plans: offers within a per-segment policy, staff approval, instalments, reminders, breach."""
