"""pgha's Pulumi program; `tests/` imports `infra.outputs` and pure helpers from here."""
