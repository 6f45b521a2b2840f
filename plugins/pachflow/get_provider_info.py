"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from pachflow import __version__

# The MLflow tracking server's connection: its form asks for the tracking URI and basic auth
# (connections of type "http" keep working with the same hook).
MLFLOW_CONNECTION_TYPE = {
    "connection-type": "mlflow",
    "hook-class-name": "pachflow.hooks.mlflow.MLflowHook",
    "hook-name": "MLflow",
    "ui-field-behaviour": {
        "hidden-fields": ["schema"],
        "relabeling": {"host": "Tracking URI", "login": "Username", "password": "Password"},
        "placeholders": {
            "host": "http://127.0.0.1 or https://mlflow.example.com/prefix",
            "port": "5000 (when not in the URI)",
            "login": "basic auth (optional)",
            "password": "basic auth (optional)",
        },
    },
}


def get_provider_info() -> dict:
    """Describe the pachflow provider: the ``pachyderm`` and ``mlflow`` connection types and their forms."""
    return {
        "package-name": "pachflow",
        "name": "pachflow (Pachyderm + MLflow)",
        "description": "Pachyderm hooks, operators, sensors and triggers with two-way MLflow lineage.",
        "versions": [__version__],
        "connection-types": [
            {
                "connection-type": "pachyderm",
                "hook-class-name": "pachflow.hooks.pachyderm.PachydermHook",
                "hook-name": "Pachyderm",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login"],
                    "relabeling": {"host": "pachd address", "port": "pachd port", "password": "Auth token"},
                    "placeholders": {"host": "localhost or pachd.pachyderm.svc", "port": "30650"},
                },
                "conn-fields": {
                    "project": {
                        "label": "Project",
                        "description": "Pachyderm project of the repos and pipelines",
                        "schema": {"type": ["string", "null"], "default": "default"},
                    },
                    "tls": {
                        "label": "Use TLS",
                        "description": "Connect with grpcs (TLS)",
                        "schema": {"type": ["boolean", "null"], "default": False},
                    },
                    "kubernetes_conn_id": {
                        "label": "Kubernetes connection",
                        "description": "Find pachd through this Kubernetes connection instead of host/port",
                        "schema": {"type": ["string", "null"]},
                    },
                    "namespace": {
                        "label": "Kubernetes namespace",
                        "description": "Namespace of the pachd Service (with a Kubernetes connection)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "service": {
                        "label": "pachd Service name",
                        "description": "Kubernetes Service of pachd (with a Kubernetes connection)",
                        "schema": {"type": ["string", "null"], "default": "pachd"},
                    },
                    "port_name": {
                        "label": "pachd Service port name",
                        "description": "Named port of the pachd Service that serves the gRPC API",
                        "schema": {"type": ["string", "null"], "default": "api-grpc-port"},
                    },
                    "console_url": {
                        "label": "Pachyderm Console URL",
                        "description": "Base URL of Pachyderm Console, for the 'Pachyderm commit' task link",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            MLFLOW_CONNECTION_TYPE,
        ],
        "integrations": [
            {
                "integration-name": "Pachyderm",
                "external-doc-url": "https://docs.pachyderm.com/",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Pachyderm",
                "python-modules": ["pachflow.hooks.pachyderm", "pachflow.hooks.mlflow"],
            }
        ],
        "operators": [
            {
                "integration-name": "Pachyderm",
                "python-modules": [
                    "pachflow.operators.pipelines",
                    "pachflow.operators.files",
                    "pachflow.operators.lineage",
                    "pachflow.operators.rollback",
                ],
            }
        ],
        "sensors": [{"integration-name": "Pachyderm", "python-modules": ["pachflow.sensors.pachyderm"]}],
        "triggers": [{"integration-name": "Pachyderm", "python-modules": ["pachflow.triggers.pachyderm"]}],
        "extra-links": ["pachflow.links.MLflowRunLink", "pachflow.links.PachydermCommitLink"],
        "asset-uris": [{"schemes": ["pachyderm"], "handler": None}],
        "config": {
            "pachflow": {
                "description": "Settings of the pachflow provider.",
                "options": {
                    "default_deferrable": {
                        "description": "Whether pachflow sensors defer to the triggerer by default "
                        "(set False where no triggerer runs).",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": "False",
                        "default": "True",
                    }
                },
            }
        },
    }
