"""GraphQL for devices: fleet queries, device settings, quarantine decisions, imports, claims
and customers' devices."""
