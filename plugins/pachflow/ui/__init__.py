"""The "Lineage" views of pachflow inside the Airflow UI (an Airflow plugin).

``plugin`` registers them (entry point ``airflow.plugins``); ``app`` is the FastAPI app the API
server mounts under ``/pachflow``; ``queries`` validates what a user asks for, ``graph`` finds and
enriches lineage records, ``render`` draws them as HTML with an inline SVG (no script, no CDN).
"""
