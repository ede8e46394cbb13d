"""Chat channels' bookkeeping that core needs: when a chat last wrote to us, and blocked chats."""
