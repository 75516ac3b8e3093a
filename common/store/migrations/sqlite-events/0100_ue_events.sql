-- imslab per-UE timeline, SQLite flavour: a separate database file next to the store, with
-- its own writer, so recording events never blocks subscriber or SQN writes.

-- Per-UE diagnosis timeline; pruned to a configured size and age.
CREATE TABLE ue_events (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    function TEXT NOT NULL,
    imsi TEXT,
    impi TEXT,
    impu TEXT,
    step TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX ue_events_at ON ue_events (at);
CREATE INDEX ue_events_imsi ON ue_events (imsi, at);
CREATE INDEX ue_events_impi ON ue_events (impi, at);
CREATE INDEX ue_events_impu ON ue_events (impu, at);
