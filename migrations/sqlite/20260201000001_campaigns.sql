-- Outbound campaigns (SQLite). Keep in step with ../postgres: same tables, columns and indexes.
-- Times are microseconds since the Unix epoch (UTC); JSON columns hold serde_json text.

-- One campaign: its settings (`spec`, JSON) and the columns the dispatcher reads in its claim.
CREATE TABLE campaigns (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    state           TEXT NOT NULL,
    spec            TEXT NOT NULL,
    max_concurrent  INTEGER NOT NULL,
    cps             REAL NOT NULL,
    end_at_us       INTEGER,
    last_dial_at_us INTEGER NOT NULL DEFAULT 0,
    created_at_us   INTEGER NOT NULL,
    updated_at_us   INTEGER NOT NULL
);
CREATE INDEX campaigns_by_state ON campaigns (state);

-- One contact of a campaign: pending (due at next_at_us) → dialing → settling → done.
CREATE TABLE contacts (
    id            TEXT PRIMARY KEY NOT NULL,
    campaign_id   TEXT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    line          INTEGER NOT NULL,
    phone         TEXT NOT NULL,
    name          TEXT,
    timezone      TEXT,
    variables     TEXT NOT NULL DEFAULT '{}',
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at_us    INTEGER NOT NULL,
    outcome       TEXT,
    last_call_sid TEXT,
    updated_at_us INTEGER NOT NULL,
    UNIQUE (campaign_id, phone)
);
CREATE INDEX contacts_due ON contacts (campaign_id, state, next_at_us);

-- One dial: a campaign contact's attempt, or a single call (campaign_id and contact_id NULL).
CREATE TABLE attempts (
    id            TEXT PRIMARY KEY NOT NULL,
    campaign_id   TEXT,
    contact_id    TEXT,
    number        INTEGER NOT NULL,
    call_sid      TEXT UNIQUE,
    instance      TEXT NOT NULL,
    status        TEXT NOT NULL,
    answered_by   TEXT,
    started_at_us INTEGER NOT NULL,
    ended_at_us   INTEGER,
    duration_ms   INTEGER,
    outcome       TEXT,
    error         TEXT
);
CREATE INDEX attempts_by_contact ON attempts (contact_id, number);
CREATE INDEX attempts_open ON attempts (ended_at_us, started_at_us);

-- Numbers never to dial (checked at dispatch time).
CREATE TABLE dnc (
    phone       TEXT PRIMARY KEY NOT NULL,
    reason      TEXT NOT NULL,
    added_at_us INTEGER NOT NULL
);
