"""pps_v2.API: pipelines, jobs, datums and logs (RunPipeline stays unimplemented, as in pachd 2.12)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from betterproto.lib.google.protobuf import Empty
from pachyderm_sdk.api import pfs, pps

from pachd_lite.api import convert as cv
from pachd_lite.errors import InvalidArgument, NotFound, Unknown
from pachd_lite.pfs import branches, files
from pachd_lite.pfs.model import BranchRef, PfsContext, RepoRef
from pachd_lite.pps import cron, datum_records, pipelines, secrets
from pachd_lite.pps import jobs as jobs_mod
from pachd_lite.pps.create_datum import stream_datums
from pachd_lite.pps.datums import Match, PfsInputRef, compute_datums
from pachd_lite.pps.input_checks import refuse_cron_input
from pachd_lite.pps.logs import LogStore
from pachd_lite.pps.restarts import RunningDatums
from pachd_lite.pps.spec import parse_create_pipeline_request
from pachd_lite.protojson import is_set

DEFAULT_SINCE = 24 * 3600


def _pipeline_key(msg: pps.Pipeline | None) -> tuple[str, str]:
    if msg is None or not msg.name:
        raise InvalidArgument("a pipeline name is required")
    project = msg.project.name if msg.project is not None and msg.project.name else "default"
    return project, msg.name


def _pipeline_msg(project: str, name: str) -> pps.Pipeline:
    return pps.Pipeline(name=name, project=pfs.Project(name=project))


class PpsApi:
    def __init__(self, ctx: PfsContext, logs: LogStore, running: RunningDatums) -> None:
        self.ctx = ctx
        self.logs = logs
        self.running = running  # the scheduler's: RestartDatum cancels them

    # --- conversions ---------------------------------------------------------------------
    def pipeline_info(self, record: pipelines.PipelineRecord) -> pps.PipelineInfo:
        spec = record.spec
        details = pps.PipelineInfoDetails(
            transform=spec.transform,
            parallelism_spec=spec.parallelism_spec,
            egress=spec.egress,
            created_at=cv.ts(record.created_at),
            updated_at=cv.ts(record.created_at),
            workers_requested=int(spec.parallelism_spec.constant or 1),
            workers_available=int(spec.parallelism_spec.constant or 1),
            output_branch=record.output_branch,
            resource_requests=spec.resource_requests,
            resource_limits=spec.resource_limits,
            input=spec.input,
            description=spec.description,
            salt=record.salt,
            datum_set_spec=spec.datum_set_spec,
            datum_timeout=spec.datum_timeout,
            job_timeout=spec.job_timeout,
            datum_tries=spec.datum_tries,
            scheduling_spec=spec.scheduling_spec,
            pod_spec=spec.pod_spec,
            pod_patch=spec.pod_patch,
            s3_out=spec.s3_out,
            metadata=spec.metadata,
            reprocess_spec=spec.reprocess_spec,
            autoscaling=spec.autoscaling,
            tolerations=spec.tolerations,
        )
        return pps.PipelineInfo(
            pipeline=_pipeline_msg(record.project, record.name),
            version=record.version,
            spec_commit=cv.to_commit(
                cv.CommitRef(repo=record.spec_repo, id=record.spec_commit_set, branch="master")
            ),
            stopped=record.stopped,
            state=pps.PipelineState(record.state),
            reason=record.reason,
            last_job_state=pps.JobState(jobs_mod.last_job_state(self.ctx, record.project, record.name)),
            parallelism=int(spec.parallelism_spec.constant or 1),
            type=pps.PipelineInfoPipelineType.PIPELINE_TYPE_TRANSFORM,
            details=details,
            user_spec_json=record.user_spec_json,
            effective_spec_json=record.effective_spec_json,
            metadata=dict(record.metadata),
        )

    def job_info(self, job: jobs_mod.JobRecord, details: bool = False) -> pps.JobInfo:
        record = pipelines.job_pipeline(self.ctx, job)
        output_branch = record.output_branch if record is not None else "master"
        info = pps.JobInfo(
            job=pps.Job(pipeline=_pipeline_msg(job.project, job.pipeline), id=job.id),
            pipeline_version=job.pipeline_version,
            output_commit=cv.to_commit(
                cv.CommitRef(RepoRef(job.project, job.pipeline), job.id, output_branch)
            ),
            restart=job.restart,
            data_processed=job.data_processed,
            data_skipped=job.data_skipped,
            data_total=job.data_total,
            data_failed=job.data_failed,
            data_recovered=job.data_recovered,
            stats=pps.ProcessStats(),
            state=pps.JobState(job.state),
            reason=job.reason,
            created=cv.ts(job.created),
            started=cv.ts(job.started),
            finished=cv.ts(job.finished),
        )
        if details and record is not None:
            spec = record.spec
            info.details = pps.JobInfoDetails(
                transform=spec.transform,
                parallelism_spec=spec.parallelism_spec,
                input=spec.input,
                salt=record.salt,
                datum_set_spec=spec.datum_set_spec,
                datum_timeout=spec.datum_timeout,
                job_timeout=spec.job_timeout,
                datum_tries=spec.datum_tries,
                resource_requests=spec.resource_requests,
                resource_limits=spec.resource_limits,
            )
        return info

    def datum_info(self, job: jobs_mod.JobRecord, row: Any) -> pps.DatumInfo:
        data = []
        for inp in json.loads(row["inputs"]):
            commit = cv.CommitRef(
                RepoRef(inp.get("project", job.project), inp["repo"]), inp["commit"], inp["branch"]
            )
            data.append(
                pfs.FileInfo(
                    file=pfs.File(commit=cv.to_commit(commit), path=inp["path"]),
                    file_type=pfs.FileType.DIR if inp.get("is_dir") else pfs.FileType.FILE,
                    size_bytes=inp.get("size", 0),
                    hash=bytes.fromhex(inp["hash"]) if inp.get("hash") else b"",
                )
            )
        state = row["state"]
        if row["origin_job"] and row["origin_job"] != job.id:
            state = int(pps.DatumState.SKIPPED)
        return pps.DatumInfo(
            datum=pps.Datum(
                job=pps.Job(pipeline=_pipeline_msg(job.project, job.pipeline), id=job.id), id=row["datum_id"]
            ),
            state=pps.DatumState(state),
            stats=pps.ProcessStats(),
            data=data,
        )

    # --- pipelines -----------------------------------------------------------------------
    def CreatePipeline(self, req: pps.CreatePipelineRequest, context: Any) -> Empty:
        pipelines.create_pipeline(
            self.ctx, req, update=req.update, reprocess=req.reprocess, dry_run=req.dry_run
        )
        return Empty()

    def CreatePipelineV2(
        self, req: pps.CreatePipelineV2Request, context: Any
    ) -> pps.CreatePipelineV2Response:
        spec = parse_create_pipeline_request(req.create_pipeline_request_json)
        effective = pipelines.create_pipeline(
            self.ctx,
            spec,
            update=req.update,
            reprocess=req.reprocess,
            dry_run=req.dry_run,
            user_json=req.create_pipeline_request_json,
        )
        return pps.CreatePipelineV2Response(effective_create_pipeline_request_json=effective)

    def InspectPipeline(self, req: pps.InspectPipelineRequest, context: Any) -> pps.PipelineInfo:
        project, name = _pipeline_key(req.pipeline)
        return self.pipeline_info(pipelines.get_pipeline(self.ctx, project, name))

    def ListPipeline(self, req: pps.ListPipelineRequest, context: Any) -> Iterator[pps.PipelineInfo]:
        project, name = ("", "")
        if req.pipeline is not None and req.pipeline.name:
            project, name = _pipeline_key(req.pipeline)
            pipelines.get_pipeline(self.ctx, project, name)
        records = pipelines.list_pipelines(
            self.ctx, project, name, req.history, [p.name for p in req.projects if p.name] or None
        )
        if req.commit_set is not None and req.commit_set.id:
            in_set = {
                (j.project, j.pipeline) for j in jobs_mod.list_jobs(self.ctx, job_set=req.commit_set.id)
            }
            records = [r for r in records if (r.project, r.name) in in_set]
        for record in records:
            yield self.pipeline_info(record)

    def DeletePipeline(self, req: pps.DeletePipelineRequest, context: Any) -> Empty:
        if req.all:
            for record in pipelines.list_pipelines(self.ctx):
                pipelines.delete_pipeline(self.ctx, record.project, record.name, True, req.keep_repo)
            return Empty()
        project, name = _pipeline_key(req.pipeline)
        try:
            pipelines.delete_pipeline(self.ctx, project, name, req.force, req.keep_repo)
        except NotFound:
            if req.must_exist:
                raise
        return Empty()

    def DeletePipelines(self, req: pps.DeletePipelinesRequest, context: Any) -> pps.DeletePipelinesResponse:
        names = [p.name for p in req.projects if p.name]
        deleted = []
        for record in pipelines.list_pipelines(self.ctx, projects_filter=None if req.all else names):
            pipelines.delete_pipeline(self.ctx, record.project, record.name, True, req.keep_repo)
            deleted.append(_pipeline_msg(record.project, record.name))
        return pps.DeletePipelinesResponse(pipelines=deleted)

    def StopPipeline(self, req: pps.StopPipelineRequest, context: Any) -> Empty:
        project, name = _pipeline_key(req.pipeline)
        try:
            pipelines.set_stopped(self.ctx, project, name, True)
        except NotFound:
            if req.must_exist:
                raise
        return Empty()

    def StartPipeline(self, req: pps.StartPipelineRequest, context: Any) -> Empty:
        project, name = _pipeline_key(req.pipeline)
        pipelines.set_stopped(self.ctx, project, name, False)
        return Empty()

    def RerunPipeline(self, req: pps.RerunPipelineRequest, context: Any) -> Empty:
        project, name = _pipeline_key(req.pipeline)
        pipelines.rerun_pipeline(self.ctx, project, name, req.reprocess)
        return Empty()

    def RunCron(self, req: pps.RunCronRequest, context: Any) -> Empty:
        cron.run_cron(self.ctx, *_pipeline_key(req.pipeline))
        return Empty()

    # --- jobs ----------------------------------------------------------------------------
    def _job_key(self, job: pps.Job) -> tuple[str, str, str]:
        project, name = _pipeline_key(job.pipeline if job is not None else None)
        if not job.id:
            raise InvalidArgument("a job id is required")
        return project, name, job.id

    def InspectJob(self, req: pps.InspectJobRequest, context: Any) -> pps.JobInfo:
        key = self._job_key(req.job)
        job = (
            jobs_mod.wait_job(self.ctx, *key, context.is_active)
            if req.wait
            else jobs_mod.get_job(self.ctx, *key)
        )
        return self.job_info(job, req.details)

    def ListJob(self, req: pps.ListJobRequest, context: Any) -> Iterator[pps.JobInfo]:
        project, name = ("", "")
        if req.pipeline is not None and req.pipeline.name:
            project, name = _pipeline_key(req.pipeline)
        inputs = [cv.commit_ref(c) for c in req.input_commit] or None
        records = jobs_mod.list_jobs(
            self.ctx, project, name, [p.name for p in req.projects if p.name] or None, input_commits=inputs
        )
        if name and req.history >= 0:
            # pachd: with a pipeline, only its current version's jobs (history N: N versions more)
            current = pipelines.get_pipeline(self.ctx, project, name).version
            records = [j for j in records if j.pipeline_version >= current - req.history]
        if req.reverse:
            records.reverse()
        if req.number:
            records = records[: req.number]
        for job in records:
            yield self.job_info(job, req.details or bool(req.input_commit))

    def InspectJobSet(self, req: pps.InspectJobSetRequest, context: Any) -> Iterator[pps.JobInfo]:
        records = jobs_mod.list_jobs(self.ctx, job_set=req.job_set.id)
        records.sort(key=lambda j: j.seq)
        for job in records:
            if req.wait:
                job = jobs_mod.wait_job(self.ctx, job.project, job.pipeline, job.id, context.is_active)
            yield self.job_info(job, req.details)

    def ListJobSet(self, req: pps.ListJobSetRequest, context: Any) -> Iterator[pps.JobSetInfo]:
        by_set: dict[str, list[jobs_mod.JobRecord]] = {}
        for job in jobs_mod.list_jobs(self.ctx, projects=[p.name for p in req.projects if p.name] or None):
            by_set.setdefault(job.id, []).append(job)
        items = list(by_set.items())
        if req.reverse:
            items.reverse()
        if req.number:
            items = items[: req.number]
        for set_id, records in items:
            yield pps.JobSetInfo(
                job_set=pps.JobSet(id=set_id),
                jobs=[self.job_info(j, req.details) for j in sorted(records, key=lambda j: j.seq)],
            )

    def SubscribeJob(self, req: pps.SubscribeJobRequest, context: Any) -> Iterator[pps.JobInfo]:
        if req.pipeline is None or not req.pipeline.name:
            raise Unknown("pipeline must be specified")
        project, name = _pipeline_key(req.pipeline)  # pachd watches even a pipeline that is not there
        for job in jobs_mod.subscribe_jobs(self.ctx, project, name, context.is_active):
            yield self.job_info(job, req.details)

    def StopJob(self, req: pps.StopJobRequest, context: Any) -> Empty:
        jobs_mod.stop_job(self.ctx, *self._job_key(req.job), req.reason)
        return Empty()

    def DeleteJob(self, req: pps.DeleteJobRequest, context: Any) -> Empty:
        jobs_mod.delete_job(self.ctx, *self._job_key(req.job))
        return Empty()

    # --- datums --------------------------------------------------------------------------
    def ListDatum(self, req: pps.ListDatumRequest, context: Any) -> Iterator[pps.DatumInfo]:
        if req.input is not None and (req.input.pfs is not None and req.input.pfs.repo or req.input.cross
                                      or req.input.union or req.input.join or req.input.group
                                      or is_set(req.input.cron)):  # fmt: skip
            if is_set(req.job):
                raise Unknown("cannot specify both job and input")
            refuse_cron_input(req.input)
            yield from self._dry_run_datums(req.input)
            return
        job = jobs_mod.get_job(self.ctx, *self._job_key(req.job))
        states = {int(s) for s in req.filter.state} if req.filter is not None else set()
        infos = [self.datum_info(job, row) for row in datum_records.job_datums(self.ctx, job)]
        if states:
            infos = [i for i in infos if int(i.state) in states]
        if req.reverse:
            infos.reverse()
        if req.pagination_marker:
            infos = [
                i
                for i in infos
                if (i.datum.id < req.pagination_marker if req.reverse else i.datum.id > req.pagination_marker)
            ]
        if req.number:
            infos = infos[: req.number]
        yield from infos

    def _dry_run_datums(self, input_msg: pps.Input) -> Iterator[pps.DatumInfo]:
        def list_matches(ref: PfsInputRef, glob: str) -> list[Match]:
            branch = BranchRef(RepoRef(ref.project, ref.repo, ref.repo_type or "user"), ref.branch)
            head = branches.inspect_branch(self.ctx, branch).head
            if head is None:
                return []
            snap = files.snapshot(self.ctx, head)
            return [
                Match(i.path, i.hash.hex(), i.is_dir, i.size_bytes) for i in files.glob_snapshot(snap, glob)
            ]

        for d in compute_datums(input_msg, list_matches, ""):
            yield pps.DatumInfo(
                datum=pps.Datum(id=d.id),
                state=pps.DatumState.UNKNOWN,
                data=[
                    pfs.FileInfo(
                        file=pfs.File(
                            commit=cv.to_commit(cv.CommitRef(RepoRef(i.project, i.repo), i.commit, i.branch)),
                            path=i.path,
                        ),
                        hash=bytes.fromhex(i.file_hash),
                        size_bytes=i.size,
                    )
                    for i in d.inputs
                ],
            )

    def CreateDatum(
        self, requests: Iterator[pps.CreateDatumRequest], context: Any
    ) -> Iterator[pps.DatumInfo]:
        yield from stream_datums(requests, self._dry_run_datums)

    def InspectDatum(self, req: pps.InspectDatumRequest, context: Any) -> pps.DatumInfo:
        job = jobs_mod.get_job(self.ctx, *self._job_key(req.datum.job))
        rows = datum_records.job_datums(self.ctx, job, req.datum.id)
        if not rows:
            raise NotFound(f"datum {req.datum.id} not found in job {job}")
        return self.datum_info(job, rows[0])

    def RestartDatum(self, req: pps.RestartDatumRequest, context: Any) -> Empty:
        job = jobs_mod.get_job(self.ctx, *self._job_key(req.job))
        filters = list(req.data_filters)
        # pachd's worker Cancel finds running datums only: the matching try is killed and retried;
        # a finished datum (or none) matching is pachd's plain "could not be found" error
        if not self.running.cancel((job.project, job.pipeline, job.id), filters):
            raise Unknown(
                f"datum matching filter [{' '.join(filters)}] could not be found for job ID {job.id}"
            )
        return Empty()

    # --- secrets -------------------------------------------------------------------------
    @staticmethod
    def _secret_info(record: secrets.SecretRecord) -> pps.SecretInfo:
        # pachd's SecretInfo: name, type and creation time only; the values never leave the server
        return pps.SecretInfo(
            secret=pps.Secret(name=record.name), type=record.type, creation_timestamp=cv.ts(record.created_at)
        )

    def CreateSecret(self, req: pps.CreateSecretRequest, context: Any) -> Empty:
        secrets.create_secret(self.ctx, req.file)
        return Empty()

    def InspectSecret(self, req: pps.InspectSecretRequest, context: Any) -> pps.SecretInfo:
        name = req.secret.name if req.secret is not None else ""
        return self._secret_info(secrets.inspect_secret(self.ctx, name))

    def ListSecret(self, req: Empty, context: Any) -> pps.SecretInfos:
        return pps.SecretInfos(secret_info=[self._secret_info(r) for r in secrets.list_secrets(self.ctx)])

    def DeleteSecret(self, req: pps.DeleteSecretRequest, context: Any) -> Empty:
        secrets.delete_secret(self.ctx, req.secret.name if req.secret is not None else "")
        return Empty()

    # --- logs ----------------------------------------------------------------------------
    def GetLogs(self, req: pps.GetLogsRequest, context: Any) -> Iterator[pps.LogMessage]:
        project = name = job_id = datum_id = ""
        if req.pipeline is not None and req.pipeline.name:
            project, name = _pipeline_key(req.pipeline)
        if req.job is not None and req.job.id:
            job_id = req.job.id
            if req.job.pipeline is not None and req.job.pipeline.name:
                project, name = _pipeline_key(req.job.pipeline)
        if req.datum is not None and req.datum.id:
            datum_id = req.datum.id
            if req.datum.job is not None and req.datum.job.id:
                job_id = req.datum.job.id
                if req.datum.job.pipeline is not None and req.datum.job.pipeline.name:
                    project, name = _pipeline_key(req.datum.job.pipeline)
        if not name and not job_id:
            raise InvalidArgument("GetLogs needs a pipeline, a job or a datum")
        since_s = (
            req.since.total_seconds()
            if req.since is not None and req.since.total_seconds() > 0
            else DEFAULT_SINCE
        )
        for line in self.logs.query(
            project=project,
            pipeline=name,
            job_id=job_id,
            datum_id=datum_id,
            master=req.master,
            since=time.time() - since_s,
            tail=req.tail,
            follow=req.follow,
            alive=context.is_active,
            data_filters=list(req.data_filters),
        ):
            yield pps.LogMessage(
                project_name=line.project,
                pipeline_name=line.pipeline,
                job_id=line.job_id,
                datum_id=line.datum_id,
                master=line.master,
                user=line.user and not line.master,
                data=[pps.InputFile(path=path, hash=bytes.fromhex(hash_hex)) for path, hash_hex in line.data],
                ts=cv.ts(line.ts),
                message=line.message,
            )
