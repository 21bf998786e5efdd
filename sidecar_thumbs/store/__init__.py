"""The state database: SQLite rules, paths, migrations, the durable queue, the coordinator lock."""
