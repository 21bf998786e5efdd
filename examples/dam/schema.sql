-- A small asset-manager database, as sidecar-thumbs can attach to it (see .env.local beside this file).
-- Create it:   sqlite3 /tmp/dam-example.sqlite3 < examples/dam/schema.sql   (again: changes nothing)
-- The asset manager owns this table; sidecar-thumbs reads it and writes only the columns named in
-- its settings (has_thumbnail, and optionally thumbnail_path and thumbnail_rendered_at).
PRAGMA user_version = 7;  -- the asset manager's own schema version: sidecar-thumbs never touches it

CREATE TABLE IF NOT EXISTS assets (
    asset_id INTEGER PRIMARY KEY,
    rel_path TEXT NOT NULL UNIQUE,          -- relative to the library root
    title TEXT,
    added_at TEXT DEFAULT CURRENT_TIMESTAMP,
    has_thumbnail INTEGER NOT NULL DEFAULT 0,
    thumbnail_path TEXT,
    thumbnail_rendered_at REAL
);

INSERT OR IGNORE INTO assets (rel_path, title) VALUES
    ('gear.stl', 'Gear, 18 teeth'),
    ('plate.3mf', 'Demo plate'),
    ('parts/bracket.stl', 'Angle bracket'),
    ('parts/torus (ascii).stl', 'Torus'),
    ('parts/not-yet-uploaded.stl', 'Listed, but no file yet');
