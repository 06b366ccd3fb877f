"""tqflow: a declarative workflow language for distributed job queues on Redis Streams."""

__version__ = "0.1.0"
