"""transaction_v2.API: batch writes so they share one commit set (and so start one job).

While a client carries ``pach-transaction: <id>`` metadata, the transactional RPCs
(create/delete repo, start/finish commit, create/delete branch, squash commit set, stop job,
create pipeline) are recorded instead of run; StartCommit answers with the commit the
transaction will create. FinishTransaction runs them in order in one database transaction
under one commit-set id: all of them or none. Open transactions live in memory (a restart
drops them, like a transaction pachd never finished).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import betterproto
from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs, pps, transaction

from pachd_lite.api import convert as cv
from pachd_lite.errors import FailedPrecondition, NotFound
from pachd_lite.pfs import commit_sets
from pachd_lite.pfs.model import PfsContext
from pachd_lite.pfs.names import new_id

METADATA_KEY = "pach-transaction"

# RPC path -> TransactionRequest field
TRANSACTIONAL = {
    "/pfs_v2.API/CreateRepo": "create_repo",
    "/pfs_v2.API/DeleteRepo": "delete_repo",
    "/pfs_v2.API/StartCommit": "start_commit",
    "/pfs_v2.API/FinishCommit": "finish_commit",
    "/pfs_v2.API/SquashCommitSet": "squash_commit_set",
    "/pfs_v2.API/CreateBranch": "create_branch",
    "/pfs_v2.API/DeleteBranch": "delete_branch",
    "/pps_v2.API/StopJob": "stop_job",
    "/pps_v2.API/CreatePipelineV2": "create_pipeline_v2",
}


@dataclass
class OpenTransaction:
    id: str
    commit_set: str
    started: float
    requests: list[transaction.TransactionRequest] = field(default_factory=list)
    responses: list[transaction.TransactionResponse] = field(default_factory=list)
    # what to run: (TransactionRequest field, request message); CreatePipelineV2Request kept whole
    ops: list[tuple[str, Any]] = field(default_factory=list)


class TransactionApi:
    """The transaction_v2.API service plus the interceptor that records transactional calls."""

    def __init__(self, ctx: PfsContext, pfs_api: Any, pps_api: Any) -> None:
        self.ctx = ctx
        self.pfs_api = pfs_api
        self.pps_api = pps_api
        self._open: dict[str, OpenTransaction] = {}
        self._lock = threading.Lock()

    def _get(self, txn_id: str) -> OpenTransaction:
        with self._lock:
            txn = self._open.get(txn_id)
        if txn is None:
            raise NotFound(f"transaction {txn_id} not found")
        return txn

    def _info(self, txn: OpenTransaction) -> transaction.TransactionInfo:
        return transaction.TransactionInfo(
            transaction=transaction.Transaction(id=txn.id),
            requests=list(txn.requests),
            responses=list(txn.responses),
            started=cv.ts(txn.started),
        )

    # --- interception of calls made inside a transaction ---------------------------------
    def intercept(self, path: str, request: Any, context: Any) -> Any | None:
        """Record a transactional call made with ``pach-transaction`` metadata; None otherwise."""
        field_name = TRANSACTIONAL.get(path)
        if field_name is None:
            return None
        txn_id = dict(context.invocation_metadata()).get(METADATA_KEY, "")
        if not txn_id:
            return None
        txn = self._get(txn_id)
        if field_name == "create_pipeline_v2":
            body: Any = pps.CreatePipelineTransaction(user_json=request.create_pipeline_request_json)
            wrapped = transaction.TransactionRequest(create_pipeline_v2=body)
        else:
            wrapped = transaction.TransactionRequest(**{field_name: request})
        response = transaction.TransactionResponse()
        reply: Any = Empty()
        if field_name == "start_commit":
            branch = cv.branch_ref(request.branch)
            commit = cv.to_commit(cv.CommitRef(branch.repo, txn.commit_set, branch.name))
            response = transaction.TransactionResponse(commit=commit)
            reply = commit
        elif field_name == "delete_repo":
            reply = pfs.DeleteRepoResponse(deleted=True)
        elif field_name == "create_pipeline_v2":
            reply = pps.CreatePipelineV2Response()
        with self._lock:
            txn.requests.append(wrapped)
            txn.responses.append(response)
            txn.ops.append((field_name, request))
        return reply

    # --- the service ---------------------------------------------------------------------
    def StartTransaction(self, req: Any, context: Any) -> transaction.Transaction:
        txn = OpenTransaction(id=new_id(), commit_set=new_id(), started=time.time())
        with self._lock:
            self._open[txn.id] = txn
        return transaction.Transaction(id=txn.id)

    def InspectTransaction(
        self, req: transaction.InspectTransactionRequest, context: Any
    ) -> transaction.TransactionInfo:
        return self._info(self._get(req.transaction.id))

    def ListTransaction(self, req: Any, context: Any) -> transaction.TransactionInfos:
        with self._lock:
            txns = list(self._open.values())
        return transaction.TransactionInfos(transaction_info=[self._info(t) for t in txns])

    def DeleteTransaction(self, req: transaction.DeleteTransactionRequest, context: Any) -> Empty:
        self._get(req.transaction.id)
        with self._lock:
            self._open.pop(req.transaction.id, None)
        return Empty()

    def DeleteAll(self, req: Any, context: Any) -> Empty:
        with self._lock:
            self._open.clear()
        return Empty()

    def FinishTransaction(
        self, req: transaction.FinishTransactionRequest, context: Any
    ) -> transaction.TransactionInfo:
        txn = self._get(req.transaction.id)
        with self._lock:
            self._open.pop(txn.id, None)
        self._run(txn, context)
        return self._info(txn)

    def BatchTransaction(
        self, req: transaction.BatchTransactionRequest, context: Any
    ) -> transaction.TransactionInfo:
        txn = OpenTransaction(
            id=new_id(), commit_set=new_id(), started=time.time(), requests=list(req.requests)
        )
        for item in req.requests:
            set_fields = [
                f for f in TRANSACTIONAL.values() if betterproto.serialized_on_wire(getattr(item, f))
            ]
            if len(set_fields) != 1:
                raise FailedPrecondition("each batched transaction request must hold exactly one operation")
            body = getattr(item, set_fields[0])
            if set_fields[0] == "create_pipeline_v2":
                body = pps.CreatePipelineV2Request(create_pipeline_request_json=body.user_json)
            txn.ops.append((set_fields[0], body))
        self._run(txn, context)
        return self._info(txn)

    def _run(self, txn: OpenTransaction, context: Any) -> None:
        with commit_sets.one_transaction(self.ctx, txn.commit_set):
            for name, body in txn.ops:
                self._execute(name, body, context)

    def _execute(self, name: str, body: Any, context: Any) -> None:
        handler = {
            "create_pipeline_v2": self.pps_api.CreatePipelineV2,
            "create_repo": self.pfs_api.CreateRepo,
            "delete_repo": self.pfs_api.DeleteRepo,
            "start_commit": self.pfs_api.StartCommit,
            "finish_commit": self.pfs_api.FinishCommit,
            "squash_commit_set": self.pfs_api.SquashCommitSet,
            "create_branch": self.pfs_api.CreateBranch,
            "delete_branch": self.pfs_api.DeleteBranch,
            "stop_job": self.pps_api.StopJob,
        }.get(name)
        if handler is None:
            raise FailedPrecondition(f"pachd-lite cannot run {name or 'an empty request'} in a transaction")
        handler(body, context)
