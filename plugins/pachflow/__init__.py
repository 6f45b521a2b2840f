"""pachflow: an Airflow provider for Pachyderm pipelines with two-way MLflow lineage."""

__version__ = "0.1.0"
