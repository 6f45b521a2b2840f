"""Pipeline system (PPS) of pachd-lite: specs, datums, running user code, jobs."""
