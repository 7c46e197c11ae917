-- The device's local store, layout version 1 (kept in PRAGMA user_version).
--
-- This file is the whole current layout: a fresh install runs it as is. A device
-- holding an older layout runs the migration steps of mobile_schema/local_store.py
-- instead, one transaction per version (docs/device.md, "Migrating the store").
-- Conventions: ids and HLCs are TEXT exactly as on the wire (lowercase UUIDs,
-- 16 lowercase hex digits, so text order is clock order); values are JSON TEXT;
-- device times are RFC 3339 UTC TEXT.

-- One row: who this device is and how far it has synced.
CREATE TABLE device (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    server_url TEXT NOT NULL,
    device_id TEXT,                     -- NULL until registered
    token TEXT,                         -- bearer token; NULL when refused (401)
    user_id INTEGER,
    username TEXT,
    role TEXT,
    grid_ids TEXT,                      -- JSON array of grid ids; NULL: every grid
    hlc TEXT NOT NULL DEFAULT '0000000000000000',  -- highest HLC issued or observed
    next_seq INTEGER NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
    acked_seq INTEGER NOT NULL DEFAULT 0 CHECK (acked_seq >= 0),
    reflected_op INTEGER NOT NULL DEFAULT 0,  -- ops.id up to which pulls hold every op
    cursor INTEGER NOT NULL DEFAULT 0 CHECK (cursor >= 0),  -- pull position applied
    snapshot_cursor INTEGER,            -- non-NULL while a snapshot is being read
    inbox_after INTEGER NOT NULL DEFAULT 0,
    forms_etag TEXT,
    last_sync_at TEXT
);

-- The device's own edits, in the order they were made; never deleted, so any seq
-- can be sent again (seq_gap after a server restore).
CREATE TABLE ops (
    id INTEGER PRIMARY KEY,             -- journal order on this device
    device_id TEXT NOT NULL,            -- the registration the op is numbered under
    seq INTEGER NOT NULL CHECK (seq >= 1),
    record_id TEXT NOT NULL,
    form_id TEXT NOT NULL,
    form_version INTEGER NOT NULL,
    grid_id INTEGER NOT NULL,
    field TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('set', 'add', 'remove')),
    value TEXT NOT NULL,                -- JSON
    hlc TEXT NOT NULL,
    base INTEGER NOT NULL CHECK (base >= 0),
    made_at TEXT NOT NULL,
    UNIQUE (device_id, seq)
);
CREATE INDEX ops_record ON ops (record_id, id);

-- The server's state of every field in scope, as pulled.
CREATE TABLE server_fields (
    record_id TEXT NOT NULL,
    field TEXT NOT NULL,
    value TEXT NOT NULL,                -- JSON; a select_multiple's sorted choices
    hlc TEXT NOT NULL,
    device_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (record_id, field)
);

-- The server's view of each record: form, and the version and grid of its winner.
CREATE TABLE server_records (
    record_id TEXT PRIMARY KEY,
    form_id TEXT NOT NULL,
    form_version INTEGER NOT NULL,
    grid_id INTEGER NOT NULL,
    position INTEGER NOT NULL
);

-- Published form versions, from the forms bundle.
CREATE TABLE forms (
    form_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    definition TEXT NOT NULL,           -- JSON, as forms/ serialises it
    PRIMARY KEY (form_id, version)
);

-- What pushes reported: ops quarantined by the server, and conflicts.
CREATE TABLE quarantined_ops (
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    field TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    reported_at TEXT NOT NULL,
    PRIMARY KEY (device_id, seq)
);

CREATE TABLE conflicts (
    conflict_id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL,
    field TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL,                 -- JSON, the conflict as the server sent it
    reported_at TEXT NOT NULL
);

-- Messages for the user: conflicts, quarantined ops, review decisions, comments, reminders.
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY,             -- the server's item id
    kind TEXT NOT NULL,
    record_id TEXT,
    created_at TEXT NOT NULL,
    payload TEXT NOT NULL,              -- JSON
    read_at TEXT
);

-- The ops still to push: those of the current registration above the acknowledged seq.
CREATE VIEW unsent_ops AS
    SELECT ops.* FROM ops JOIN device ON device.id = 1
    WHERE ops.device_id = device.device_id AND ops.seq > device.acked_seq;
