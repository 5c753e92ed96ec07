"""Real telemetry back-ends for the end-to-end tests: an OTLP/gRPC trace
receiver and a Prometheus server."""
