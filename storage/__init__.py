"""Everything that speaks SQL: the pool, migrations and one query module per subject."""
