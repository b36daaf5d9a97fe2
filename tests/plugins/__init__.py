"""Model families that exist only for tests, registered as plugins (SYNTH_PLUGINS=tests.plugins.mirror)."""
