"""Cases: the bureau's handling of anomalies that need action (sign, assign, answer, verify,
close), in their own store (`cases.sqlite`)."""
