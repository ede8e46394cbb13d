"""The channel-neutral debtor dialogue: Inbound -> engine -> [Reply] (DESIGN principle 1)."""
