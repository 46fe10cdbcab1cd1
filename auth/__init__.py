"""Who is talking: OAuth 2.0 server, tokens, passwords, principals and throttling."""
