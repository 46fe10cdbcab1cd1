"""How the world talks to us: the Starlette app, GraphQL, OAuth endpoints and the CLI."""
