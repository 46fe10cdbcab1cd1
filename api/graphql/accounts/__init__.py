"""GraphQL for accounts: `me`, sign-up, sessions, and the viewer's third-party apps."""
