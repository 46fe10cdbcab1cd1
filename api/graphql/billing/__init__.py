"""GraphQL for billing: the organization's notifications, marking them read, adding a block."""
