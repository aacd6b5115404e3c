"""The project's own helpers: a name the checker must not clash with."""
