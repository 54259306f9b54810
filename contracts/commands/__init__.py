"""Command payload models: decisions sent to their single writer (design decision 3)."""
