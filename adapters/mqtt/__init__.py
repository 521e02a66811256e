"""MQTT feeds (power meters, vehicle gates): payload validation and normalisation. Pure, no I/O."""
