"""Built-in model specs; importing a module registers its spec."""
