"""The device side: wire-message JSON Schemas, local store layout, reference client."""
