"""Staff-side notifications: which staff posts exist (batch approvals, threads), whatever the chat tool."""
