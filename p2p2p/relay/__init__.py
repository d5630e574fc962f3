"""The relay: routes share links to owners' outbound tunnels; stores nothing (arrives with the relay)."""
