"""Built-in tasks usable from any flow as `use std.NAME`."""
