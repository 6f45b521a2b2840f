"""The FastAPI app of the lineage views, mounted by Airflow's API server under ``/pachflow``.

Every route needs an authenticated Airflow user (the API server's JWT: ``Authorization: Bearer``
or the UI's session cookie); a DAG run's lineage also needs read access to its XComs, and a
rollback needs edit permission on the DAG that recorded the model. Malformed input is a 400 that
names the parameter; a missing record a 404; an unreachable pachd/MLflow a 502; never a traceback.

Routes (under ``/pachflow``):

- ``GET /api/lineage`` JSON ``{"query", "records"}`` (records as ``pachflow lineage --json``, each
  node enriched with ``details`` and ``url``), by ``run_id``, ``model`` + ``version``/``alias``,
  ``commit`` (``project/repo@id``) or ``dag_id`` + ``dag_run_id`` [+ ``task_id``];
- ``GET /lineage`` (navigation page: lookup form + graphs), ``GET /dag_run`` and
  ``GET /task_instance`` (the "Lineage" tabs), same parameters;
- ``GET /rollback`` (plan page), ``POST /rollback`` (form: apply after confirmation),
  ``GET /api/rollback/plan`` and ``POST /api/rollback`` (JSON).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from pachflow.ui import queries, render
from pachflow.ui.graph import enrich, find_records, scrub_text
from pachflow.ui.queries import BadQuery, Lookup
from pachflow.ui.services import NotConfigured, services

log = logging.getLogger(__name__)
URL_PREFIX = "/pachflow"
Q = Annotated[str | None, Query(max_length=300)]  # an optional query parameter


class Failure(Exception):
    """An expected failure with the HTTP status to answer and a message safe to show."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def classify(err: BaseException) -> Failure:
    """Map an error of a lookup or rollback to a status and a message (no traceback, no secrets)."""
    import grpc

    from pachflow.exceptions import ConfigurationError, PachydermConnectionError, RollbackError, one_line

    if isinstance(err, Failure):
        return err
    text = scrub_text(one_line(err))
    if isinstance(err, BadQuery | ConfigurationError):
        return Failure(400, text)
    if isinstance(err, RollbackError):
        return Failure(409, text)
    if isinstance(err, NotConfigured):
        return Failure(503, text)
    if isinstance(err, LookupError):  # LineageError, CommitNotFound, PachydermNotFound
        return Failure(404, text)
    if isinstance(err, grpc.RpcError) and hasattr(err, "code"):
        code = err.code()
        if code == grpc.StatusCode.NOT_FOUND:
            return Failure(404, f"pachd: {err.details()}")
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return Failure(400, f"pachd: {err.details()}")
        return Failure(502, f"pachd: {code.name}: {err.details()}")
    if isinstance(err, PachydermConnectionError | ConnectionError):
        return Failure(502, text)
    try:
        from mlflow.exceptions import MlflowException
    except ImportError:  # pragma: no cover - mlflow is a dependency
        MlflowException = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        if status == 404 or err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return Failure(404, f"MLflow: {text}")
        if 400 <= status < 500:
            return Failure(400, f"MLflow: {text}")
        return Failure(502, f"MLflow: {text}")
    log.exception("pachflow lineage view failed")
    return Failure(500, f"internal error ({type(err).__name__}); the API server log has the details")


# -- authorization -------------------------------------------------------------------------------
def allowed_on_dag(user: Any, dag_id: str | None, method: str, entity: Any = None) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.models.dag import DagModel

    details = DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)) if dag_id else None
    return get_auth_manager().is_authorized_dag(
        method=method, access_entity=entity, details=details, user=user
    )


def _require_dag_read(user: Any, q: Lookup) -> None:
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    if q.dag_id and not allowed_on_dag(user, q.dag_id, "GET", DagAccessEntity.XCOM):
        raise Failure(403, f"no permission to read the XComs of DAG {q.dag_id}")


def _same_origin(request: Request) -> None:
    """A browser POST must come from a page of this server (the session cookie is SameSite=lax too)."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise Failure(403, f"cross-origin request from {origin} refused")


# -- data ----------------------------------------------------------------------------------------
def read_xcoms(
    dag_id: str, run_id: str, task_id: str | None, keys: Iterable[str]
) -> list[tuple[str, str, Any]]:
    """(task id, key, value) of the run's XComs with ``keys`` (of ``task_id`` only, if given)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        exists = session.scalar(select(DagRun.id).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if exists is None:
            raise Failure(404, f"DAG {dag_id} has no run {run_id!r}")
        stmt = select(XComModel).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key.in_(list(keys))
        )
        if task_id:
            stmt = stmt.where(XComModel.task_id == task_id)
        rows = session.scalars(stmt.order_by(XComModel.timestamp)).all()
        return [(r.task_id, r.key, XComModel.deserialize_value(r)) for r in rows]


def _prefix(request: Request) -> str:
    return request.scope.get("root_path", "").rstrip("/")


def _node_page(request: Request) -> Callable[[str], str]:
    base = f"{_prefix(request)}/lineage?commit="
    return lambda node_id: base + quote(node_id, safe="/@")


def records_for(request: Request, user: Any, q: Lookup) -> list[dict[str, Any]]:
    _require_dag_read(user, q)
    with services(_node_page(request)) as svc:
        return [enrich(svc, rec) for rec in find_records(svc, q, read_xcoms)]


def _lookup(**params: str | None) -> Lookup:
    return queries.lookup(
        run_id_=params.get("run_id"),
        model=params.get("model"),
        version_=params.get("version"),
        alias_=params.get("alias"),
        commit=params.get("commit"),
        dag_id_=params.get("dag_id"),
        dag_run_id_=params.get("dag_run_id"),
        task_id=params.get("task_id"),
    )


# -- rollback ------------------------------------------------------------------------------------
def fingerprint(plan: Any) -> str:
    """What the user confirmed: the alias move and every branch move of the plan."""
    body = [plan.model_name, plan.alias, plan.from_version, plan.to_version, plan.data]
    body += [[b.name, b.from_commit, b.to_commit] for b in plan.branches]
    return hashlib.sha256(json.dumps(body).encode()).hexdigest()[:32]


def _plan(svc: Any, model: str, version: str, alias: str, data: bool) -> Any:
    from pachflow.rollback import plan_rollback

    mv = svc.mlflow.get_model_version(model, version)
    return plan_rollback(
        svc.mlflow, svc.client, model_name=model, alias=alias, to_run_id=mv.run_id, data=data
    )


def _plan_dag(plan: Any) -> str | None:
    return ((plan.lineage or {}).get("airflow") or {}).get("dag_id") or None


def _validated(model: str, version: str, alias: str) -> tuple[str, str, str]:
    return queries.model_name(model), queries.version(version), queries.alias(alias)


def plan_for(request: Request, user: Any, model: str, version: str, alias: str, data: bool) -> dict[str, Any]:
    from pachflow.rollback import dry_run_result

    model, version, alias = _validated(model, version, alias)
    with services(_node_page(request)) as svc:
        plan = _plan(svc, model, version, alias, data)
        result = dry_run_result(plan)
    result.pop("lineage", None)
    result["confirm"] = fingerprint(plan)
    result["allowed"] = allowed_on_dag(user, _plan_dag(plan), "PUT")
    return json.loads(scrub_text(json.dumps(result)))


def apply_for(
    request: Request, user: Any, model: str, version: str, alias: str, data: bool, confirm: str, reason: str
) -> dict[str, Any]:
    """Re-plan, check the user confirmed this very plan and may edit the DAG, then apply it."""
    from pachflow.rollback import apply_rollback

    _same_origin(request)
    model, version, alias = _validated(model, version, alias)
    with services(_node_page(request)) as svc:
        plan = _plan(svc, model, version, alias, data)
        dag_id = _plan_dag(plan)
        if not allowed_on_dag(user, dag_id, "PUT"):
            raise Failure(403, f"rolling back needs edit permission on DAG {dag_id or '(any)'}")
        if not confirm or confirm != fingerprint(plan):
            raise Failure(
                409, "the plan changed since it was shown (or was never confirmed); review it again"
            )
        who = getattr(user, "get_name", lambda: "")() or "an Airflow user"
        result = apply_rollback(plan, svc.mlflow, svc.client, reason=reason or f"Airflow UI, by {who}")
    result.pop("lineage", None)
    return json.loads(scrub_text(json.dumps(result)))


class RollbackBody(BaseModel):
    model: str
    version: str
    alias: str
    data: bool = False
    confirm: str
    reason: str = ""


# -- app -----------------------------------------------------------------------------------------
def create_app() -> FastAPI:
    app = FastAPI(title="pachflow lineage", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(Failure)
    async def _failure(request: Request, exc: Failure) -> Any:
        if request.url.path.startswith(f"{_prefix(request)}/api/"):
            return JSONResponse({"detail": exc.message}, status_code=exc.status)
        return HTMLResponse(render.page("Lineage", render.error_box(exc.message)), status_code=exc.status)

    def guarded(fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except HTTPException:
            raise
        except Exception as err:
            raise classify(err) from None

    @app.get("/api/lineage")
    def api_lineage(
        request: Request, user: GetUserDep, run_id: Q = None, model: Q = None, version: Q = None,
        alias: Q = None, commit: Q = None, dag_id: Q = None, dag_run_id: Q = None, task_id: Q = None,
    ) -> JSONResponse:  # fmt: skip
        def answer() -> JSONResponse:
            q = _lookup(run_id=run_id, model=model, version=version, alias=alias, commit=commit,
                        dag_id=dag_id, dag_run_id=dag_run_id, task_id=task_id)  # fmt: skip
            return JSONResponse({"query": q.describe(), "records": records_for(request, user, q)})

        return guarded(answer)

    def graph_page(
        request: Request, user: Any, title: str, q_params: dict[str, str | None], form: bool
    ) -> HTMLResponse:
        prefix = _prefix(request)
        body = f"<h1>{render.escape(title)}</h1>"
        if form:
            body += render.lookup_form(f"{prefix}/lineage", {k: v or "" for k, v in q_params.items()})
            if not any(q_params.values()):
                return HTMLResponse(
                    render.page(title, body + "<p class='muted'>Look up a lineage above.</p>")
                )
        status = 200
        try:
            q = _lookup(**q_params)
            records = records_for(request, user, q)
            body += f"<p class='muted'>{render.escape(q.describe())}: {len(records)} training(s)</p>"
            body += "".join(render.record_html(r, rollback_url=f"{prefix}/rollback") for r in records)
        except HTTPException:
            raise
        except Exception as err:
            failure = classify(err)
            status, body = failure.status, body + render.error_box(failure.message)
        return HTMLResponse(render.page(title, body), status_code=status)

    @app.get("/lineage", response_class=HTMLResponse)
    def lineage_page(
        request: Request, user: GetUserDep, run_id: Q = None, model: Q = None, version: Q = None,
        alias: Q = None, commit: Q = None,
    ) -> HTMLResponse:  # fmt: skip
        params = {"run_id": run_id, "model": model, "version": version, "alias": alias, "commit": commit}
        return graph_page(request, user, "Lineage", params, form=True)

    @app.get("/dag_run", response_class=HTMLResponse)
    def dag_run_tab(
        request: Request, user: GetUserDep, dag_id: Q = None, dag_run_id: Q = None
    ) -> HTMLResponse:
        params = {"dag_id": dag_id or "", "dag_run_id": dag_run_id or ""}
        return graph_page(request, user, f"Lineage of {dag_id} / {dag_run_id}", params, form=False)

    @app.get("/task_instance", response_class=HTMLResponse)
    def task_tab(
        request: Request, user: GetUserDep, dag_id: Q = None, dag_run_id: Q = None, task_id: Q = None
    ) -> HTMLResponse:
        params = {"dag_id": dag_id or "", "dag_run_id": dag_run_id or "", "task_id": task_id}
        return graph_page(
            request, user, f"Lineage of {dag_id} / {dag_run_id} / {task_id}", params, form=False
        )

    @app.get("/api/rollback/plan")
    def api_plan(
        request: Request,
        user: GetUserDep,
        model: Q = None,
        version: Q = None,
        alias: Q = None,
        data: bool = False,
    ) -> JSONResponse:
        return guarded(
            lambda: JSONResponse(plan_for(request, user, model or "", version or "", alias or "", data))
        )

    @app.post("/api/rollback")
    def api_rollback(request: Request, user: GetUserDep, body: RollbackBody) -> JSONResponse:
        return guarded(lambda: JSONResponse(apply_for(
            request, user, body.model, body.version, body.alias, body.data, body.confirm, body.reason)))  # fmt: skip

    @app.get("/rollback", response_class=HTMLResponse)
    def rollback_page(
        request: Request,
        user: GetUserDep,
        model: Q = None,
        version: Q = None,
        alias: Q = None,
        data: Q = None,
    ) -> HTMLResponse:
        wants_data = bool(data)

        def answer() -> HTMLResponse:
            plan = plan_for(request, user, model or "", version or "", alias or "", wants_data)
            body = render.plan_html(plan, action=f"{_prefix(request)}/rollback", fingerprint=plan["confirm"],
                                    allowed=plan["allowed"], data=wants_data)  # fmt: skip
            return HTMLResponse(render.page("Roll back", body))

        return guarded(answer)

    @app.post("/rollback", response_class=HTMLResponse)
    def rollback_apply(
        request: Request,
        user: GetUserDep,
        model: Annotated[str, Form(max_length=300)] = "",
        version: Annotated[str, Form(max_length=20)] = "",
        alias: Annotated[str, Form(max_length=300)] = "",
        data: Annotated[str, Form(max_length=5)] = "",
        confirm: Annotated[str, Form(max_length=64)] = "",
        reason: Annotated[str, Form(max_length=500)] = "",
    ) -> HTMLResponse:
        def answer() -> HTMLResponse:
            result = apply_for(request, user, model, version, alias, bool(data), confirm, reason)
            back = f"{_prefix(request)}/lineage?model={quote(model)}&version={quote(version)}"
            return HTMLResponse(render.page("Rolled back", render.result_html(result) + f"<p><a href='{render.escape(back)}'>lineage</a></p>"))  # fmt: skip

        return guarded(answer)

    return app


_app: FastAPI | None = None


def app() -> FastAPI:
    """The one app of this process (built on first use: only the API server needs it)."""
    global _app
    if _app is None:
        _app = create_app()
    return _app
