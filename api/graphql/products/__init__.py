"""GraphQL for products and their OAuth clients."""
