"""Everything that speaks SQL: the pool, migrations and one query module per subject.

It imports nothing of deskmate: it is given its connection parameters (`DatabaseConfig`) and
raises its own errors (`storage.errors`), which the rooms above translate."""
