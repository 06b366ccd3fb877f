"""A cluster of workers: registry and heartbeats, recovery, leadership, schedules."""
