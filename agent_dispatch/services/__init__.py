"""The job lifecycle as plain async functions: each takes its dependencies (`Deps`) as an
argument and imports neither Prefect nor a global runtime. Tasks, flows, the CLI, the HTTP API
and lean execution all call these."""
