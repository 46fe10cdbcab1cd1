"""What product creators manage: organizations, teams, products, devices, customers, events."""
