"""An asset manager's own table: the column mapping, its queries, keeping its flags in step."""
