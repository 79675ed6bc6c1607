-- Call records (SQLite). Keep in step with ../postgres: same tables, columns and indexes.
-- Times are microseconds since the Unix epoch (UTC); JSON columns hold serde_json text.
CREATE TABLE calls (
    call_sid               TEXT PRIMARY KEY NOT NULL,
    stream_sid             TEXT,
    direction              TEXT NOT NULL,
    status                 TEXT NOT NULL,
    status_rank            INTEGER NOT NULL,
    from_number            TEXT,
    to_number              TEXT,
    agent_profile          TEXT,
    engine                 TEXT,
    campaign_id            TEXT,
    contact_id             TEXT,
    started_at_us          INTEGER NOT NULL,
    answered_at_us         INTEGER,
    ended_at_us            INTEGER,
    duration_ms            INTEGER,
    end_reason             TEXT,
    outcome                TEXT,
    band                   TEXT,
    mos                    REAL,
    reasons                TEXT NOT NULL DEFAULT '[]',
    recording_location     TEXT,
    recording_content_type TEXT,
    parameters             TEXT NOT NULL DEFAULT '{}',
    quality_report         TEXT,
    events                 TEXT NOT NULL DEFAULT '{}',
    updated_at_us          INTEGER NOT NULL
);

CREATE INDEX calls_by_start ON calls (started_at_us DESC, call_sid DESC);
CREATE INDEX calls_by_direction ON calls (direction, started_at_us);
CREATE INDEX calls_by_status ON calls (status, started_at_us);
CREATE INDEX calls_by_from ON calls (from_number, started_at_us);
CREATE INDEX calls_by_to ON calls (to_number, started_at_us);
CREATE INDEX calls_by_band ON calls (band, started_at_us);
CREATE INDEX calls_by_end_reason ON calls (end_reason, started_at_us);
CREATE INDEX calls_by_outcome ON calls (outcome, started_at_us);
CREATE INDEX calls_by_agent ON calls (agent_profile, started_at_us);
CREATE INDEX calls_by_campaign ON calls (campaign_id, started_at_us);
CREATE INDEX calls_by_contact ON calls (contact_id);

-- One row per quality reason of a call, so `reason` filters use an index.
CREATE TABLE call_reasons (
    call_sid TEXT NOT NULL REFERENCES calls (call_sid) ON DELETE CASCADE,
    reason   TEXT NOT NULL,
    PRIMARY KEY (call_sid, reason)
);
CREATE INDEX call_reasons_by_reason ON call_reasons (reason, call_sid);
