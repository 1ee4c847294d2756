"""The fault-injection harness: a seeded workload through ingest's real endpoints, faults on a
schedule, and an oracle that checks every output against the accepted inputs."""
