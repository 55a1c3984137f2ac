"""The admin API: JSON over HTTP, documented by OpenAPI at /api/openapi.json."""
