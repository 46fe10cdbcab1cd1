"""What is stored: Tortoise ORM models, one module per domain, and their migrations."""
