"""params.yaml in: parsing and checking it against the declarations, its JSON Schema and comment block."""
