"""The serial vault: device models, serial signing keys, API keys, registration, devices."""
