"""The store layer: the one owner of the Redis key layout (keys.py, cluster_keys.py), the Lua scripts
beside their typed Python wrappers (lua/; calls.py lays out each call's KEYS and ARGV, scripts.py sends
it) and the codec of what goes over the wire (records.py: job records, options, attempt rows; lean.py:
lean entries; payloads.py and codec.py: payload framing). Everything above it calls it and never builds
a key or parses a record."""
