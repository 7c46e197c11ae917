"""Tests of the device side: message schemas, local store, reference client."""
