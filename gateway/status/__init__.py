"""Read models of devices and enterprises (online, running, completeness) and the
`device_status` points written from them."""
