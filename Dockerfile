# The pachflow image: Airflow 3.3 + the pachflow package (so the `pachyderm` connection type
# registers through the provider entry point), Java 17 for local Spark, pachd-lite and MLflow.
# docker-compose.yaml builds it once and runs every service (Airflow, MLflow, pachd-lite) from it.
#
# Python 3.11: pachflow's pyproject requires it (pinned dependencies were resolved on 3.11).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION

USER root
# PySpark 4 needs Java 17+. Debian bookworm ships openjdk-17; newer bases only the default JRE (21).
RUN apt-get update \
    && (apt-get install -y --no-install-recommends openjdk-17-jre-headless \
        || apt-get install -y --no-install-recommends default-jre-headless) \
    && apt-get clean && rm -rf /var/lib/apt/lists/* \
    && java -version \
    # A fixed JAVA_HOME whatever the CPU architecture's JVM directory is called.
    && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /opt/java \
    && mkdir -p /data/pachd /data/mlflow/artifacts /opt/pachflow \
    && chown -R airflow:0 /data /opt/pachflow
USER airflow
# pachd-lite runs the pipelines' Spark jobs in this container: local mode on loopback, no display.
ENV JAVA_HOME=/opt/java \
    SPARK_LOCAL_IP=127.0.0.1 \
    MPLBACKEND=Agg \
    GIT_PYTHON_REFRESH=quiet

# Dependencies first (a layer that changes only with requirements.txt). Pinning apache-airflow
# to the image's version keeps pip from up- or downgrading Airflow itself.
COPY --chown=airflow:0 requirements.txt /opt/pachflow/requirements.txt
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/pachflow/requirements.txt

# The project, installed editable so the mounted dags/, plugins/, spark_jobs/ and
# pachyderm_specs/ (see docker-compose.yaml) are the code that runs.
COPY --chown=airflow:0 . /opt/pachflow
RUN pip install --no-cache-dir --no-deps -e /opt/pachflow \
    && python -c "from pachflow.get_provider_info import get_provider_info; get_provider_info()" \
    # pachd-lite runs the pipelines' Spark jobs in this image: pre-parsed Spark classes for their JVMs.
    && python -m spark_jobs.jvm_archive

WORKDIR /opt/airflow
