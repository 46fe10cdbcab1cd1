"""GraphQL for usage: what an organization and its products used in a period, for its owner
and administrators (`organization.usage`, `product.usage`)."""
