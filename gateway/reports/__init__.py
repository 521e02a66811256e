"""Daily and monthly reports (anomalies, case handling, transmission rates, compliance with
alerts and orders) and the verdict feedback per anomaly type; see README.md for how every
figure is counted. `build` makes them off the event loop, `reading` reads the anomaly and
case files and `stored` InfluxDB; the other modules are pure."""
