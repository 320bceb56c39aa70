"""Organizations, operators, customers, API keys and the Viewer."""
