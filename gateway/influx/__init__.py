"""InfluxDB: line protocol, the sink interface, the 1.x and 2.x/3.x writers, the reader."""
