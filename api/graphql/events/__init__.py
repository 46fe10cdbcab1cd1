"""GraphQL for events: the type, history connections, publishing, function calls and live
subscriptions."""
