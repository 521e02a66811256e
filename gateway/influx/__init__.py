"""InfluxDB: line protocol, the sink interface, the 1.x and 2.x/3.x writers, the reader, and the
factory that builds writer and reader from the `[influx]` section."""
