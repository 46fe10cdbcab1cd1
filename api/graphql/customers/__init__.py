"""GraphQL for a product's customers: the customers page, creating and deleting customers."""
