"""iotstore: a self-hosted IoT app store with its own serial vault."""
