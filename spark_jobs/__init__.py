"""Spark and Arrow jobs run by the Pachyderm pipelines (split, etl, train) and the data generator."""
