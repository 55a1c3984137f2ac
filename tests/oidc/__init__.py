"""A real OpenID Connect provider (panva oidc-provider on Node.js) for sign-in tests."""
