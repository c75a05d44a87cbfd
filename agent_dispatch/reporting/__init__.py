"""Analytics over execution history: SQL aggregation, reporting tables, feedback, dashboard."""
