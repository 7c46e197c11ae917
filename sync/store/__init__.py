"""The SQL store: the merge rules of `sync` applied in bulk on SQLite and PostgreSQL."""
