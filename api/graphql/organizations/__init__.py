"""GraphQL for organizations: their team, invitations and audit log."""
