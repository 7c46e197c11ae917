"""Form definitions, versions, expressions and validation (pure: no I/O)."""
