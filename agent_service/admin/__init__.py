"""Administration: the single writer for tenants, agents, groups, canned responses, settings."""
