"""PFS flows of the reference's table A.4 through the unmodified pachyderm_sdk client."""

from __future__ import annotations

import io
import threading

import grpc
import pytest
from pachyderm_sdk.api import metadata, pfs

from tests.fixtures.pachd import unique_name
from tests.pachd_lite import is_set

UUID_HEX = 32


def make_repo(client, project: str = "default", prefix: str = "repo") -> pfs.Repo:
    repo = pfs.Repo(name=unique_name(prefix), type="user", project=pfs.Project(name=project))
    client.pfs.create_repo(repo=repo, description="test repo")
    return repo


def master(repo: pfs.Repo, name: str = "master") -> pfs.Branch:
    return pfs.Branch(repo=repo, name=name)


def read(client, repo: pfs.Repo, ref: str, path: str) -> bytes:
    return client.pfs.pfs_file(pfs.File.from_uri(f"{repo.as_uri()}@{ref}:{path}")).read()


def test_projects_create_inspect_list_delete(pachd_client):
    name = unique_name("proj")
    pachd_client.pfs.create_project(project=pfs.Project(name=name), description="d1")
    assert pachd_client.pfs.project_exists(pfs.Project(name=name))
    assert pachd_client.pfs.inspect_project(project=pfs.Project(name=name)).description == "d1"
    pachd_client.pfs.create_project(project=pfs.Project(name=name), description="d2", update=True)
    assert pachd_client.pfs.inspect_project(project=pfs.Project(name=name)).description == "d2"
    names = [p.project.name for p in pachd_client.pfs.list_project()]
    assert "default" in names and name in names
    pachd_client.pfs.delete_project(project=pfs.Project(name=name))
    assert not pachd_client.pfs.project_exists(pfs.Project(name=name))


def test_repos_in_project_and_default_type(pachd_client):
    project = unique_name("proj")
    pachd_client.pfs.create_project(project=pfs.Project(name=project))
    repo = make_repo(pachd_client, project)
    info = pachd_client.pfs.inspect_repo(repo=repo)
    assert info.repo.name == repo.name and info.repo.type == "user" and info.repo.project.name == project
    assert info.description == "test repo"
    assert info.branches == []  # CreateRepo makes no branch
    listed = list(pachd_client.pfs.list_repo(projects=[pfs.Project(name=project)]))
    assert [r.repo.name for r in listed] == [repo.name]
    assert pachd_client.pfs.delete_repo(repo=repo).deleted
    assert not pachd_client.pfs.repo_exists(repo)


def test_commit_context_put_and_read_back(pachd_client, tmp_path):
    repo = make_repo(pachd_client)
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha")
    (src / "sub" / "b.txt").write_bytes(b"beta")
    with pachd_client.pfs.commit(branch=master(repo), description="first") as c:
        c.put_files(source=src, path="/data")
        c.put_file_from_bytes("/bytes.bin", b"\x00\x01\x02")
        c.put_file_from_file(path="/fh.txt", file=io.BytesIO(b"file handle"))
    info = c.wait()
    assert len(info.commit.id) == UUID_HEX and info.commit.id[12] == "4"
    assert is_set(info.finished) and info.origin.kind == pfs.OriginKind.USER
    assert info.description == "first"
    assert read(pachd_client, repo, "master", "/data/a.txt") == b"alpha"
    assert read(pachd_client, repo, "master", "/data/sub/b.txt") == b"beta"
    assert read(pachd_client, repo, info.commit.id, "/bytes.bin") == b"\x00\x01\x02"
    assert read(pachd_client, repo, "master", "/fh.txt") == b"file handle"
    # tar of a directory: absolute names, PFSTarFile strips the leading slash
    tar = pachd_client.pfs.pfs_tar_file(pfs.File.from_uri(f"{repo.as_uri()}@master:/data"))
    members = {m.name: m for m in tar}
    assert "data/a.txt" in members and "data/sub/b.txt" in members


def test_put_file_from_url_reads_allowed_folders(pachd_factory, tmp_path):
    """file:// URLs are read only under --allow-file-urls folders (tests/reliability has the refusals)."""
    shared = tmp_path / "shared"
    (shared / "dir").mkdir(parents=True)
    (shared / "url.txt").write_bytes(b"from url")
    (shared / "dir" / "x.txt").write_bytes(b"x")
    client = pachd_factory(["--allow-file-urls", str(shared)]).client()
    repo = make_repo(client)
    with client.pfs.commit(branch=master(repo)) as c:
        c.put_file_from_url(path="/url.txt", url=(shared / "url.txt").as_uri())
        c.put_file_from_url(path="/copied", url=(shared / "dir").as_uri(), recursive=True)
    c.wait()
    assert read(client, repo, "master", "/url.txt") == b"from url"
    assert read(client, repo, "master", "/copied/x.txt") == b"x"


def test_append_overwrite_copy_delete(pachd_client):
    repo = make_repo(pachd_client)
    with pachd_client.pfs.commit(branch=master(repo)) as c:
        c.put_file_from_bytes("/f", b"one")
        c.put_file_from_bytes("/f", b"-two", append=True)
        c.put_file_from_bytes("/g", b"gone")
    assert read(pachd_client, repo, "master", "/f") == b"one-two"
    first = c.id
    with pachd_client.pfs.commit(branch=master(repo)) as c:
        c.put_file_from_bytes("/f", b"new")  # overwrite: the SDK sends DeleteFile first
        c.copy_file(src=pfs.File.from_uri(f"{repo.as_uri()}@{first}:/f"), dst="/copy")
        c.delete_file(path="/g")
    assert read(pachd_client, repo, "master", "/f") == b"new"
    assert read(pachd_client, repo, "master", "/copy") == b"one-two"  # copied from the previous head
    assert not pachd_client.pfs.path_exists(pfs.File.from_uri(f"{repo.as_uri()}@master:/g"))
    assert read(pachd_client, repo, "master^", "/g") == b"gone"


def test_list_walk_glob_inspect(pachd_client):
    repo = make_repo(pachd_client)
    with pachd_client.pfs.commit(branch=master(repo)) as c:
        for path in ["/a/1.csv", "/a/2.csv", "/b/x/3.csv", "/top.txt"]:
            c.put_file_from_bytes(path, path.encode())
    uri = f"{repo.as_uri()}@master"
    top = [f.file.path for f in pachd_client.pfs.list_file(file=pfs.File.from_uri(f"{uri}:/"))]
    assert top == ["/a/", "/b/", "/top.txt"]
    walked = [f.file.path for f in pachd_client.pfs.walk_file(file=pfs.File.from_uri(f"{uri}:/b"))]
    assert walked == ["/b/", "/b/x/", "/b/x/3.csv"]
    commit = pfs.Commit.from_uri(uri)
    assert [f.file.path for f in pachd_client.pfs.glob_file(commit=commit, pattern="/*")] == [
        "/a/",
        "/b/",
        "/top.txt",
    ]
    assert [f.file.path for f in pachd_client.pfs.glob_file(commit=commit, pattern="/*/*")] == [
        "/a/1.csv",
        "/a/2.csv",
        "/b/x/",
    ]
    assert [f.file.path for f in pachd_client.pfs.glob_file(commit=commit, pattern="/")] == ["/"]
    deep = [f.file.path for f in pachd_client.pfs.glob_file(commit=commit, pattern="/**.csv")]
    assert deep == ["/a/1.csv", "/a/2.csv", "/b/x/3.csv"]
    assert [f.file.path for f in pachd_client.pfs.glob_file(commit=commit, pattern="/a/[1]*")] == ["/a/1.csv"]
    info = pachd_client.pfs.inspect_file(file=pfs.File.from_uri(f"{uri}:/a"))
    assert info.file_type == pfs.FileType.DIR and info.size_bytes == len(b"/a/1.csv") * 2
    finfo = pachd_client.pfs.inspect_file(file=pfs.File.from_uri(f"{uri}:/top.txt"))
    assert finfo.file_type == pfs.FileType.FILE and finfo.size_bytes == len(b"/top.txt") and finfo.hash


def test_ancestry_and_list_commit(pachd_client):
    repo = make_repo(pachd_client)
    ids = []
    for i in range(3):
        with pachd_client.pfs.commit(branch=master(repo)) as c:
            c.put_file_from_bytes("/n", str(i).encode())
        ids.append(c.id)
    assert read(pachd_client, repo, "master^", "/n") == b"1"
    assert read(pachd_client, repo, "master~2", "/n") == b"0"
    assert read(pachd_client, repo, "master.1", "/n") == b"0"
    listed = [ci.commit.id for ci in pachd_client.pfs.list_commit(repo=repo)]
    assert listed == ids[::-1]
    assert [ci.commit.id for ci in pachd_client.pfs.list_commit(repo=repo, number=1)] == [ids[2]]
    assert [ci.commit.id for ci in pachd_client.pfs.list_commit(repo=repo, reverse=True)] == ids
    info = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo.as_uri()}@{ids[1]}"))
    assert info.parent_commit.id == ids[0] and [c.id for c in info.child_commits] == [ids[2]]


def test_one_off_commit_when_head_finished(pachd_client):
    repo = make_repo(pachd_client)
    with pachd_client.pfs.commit(branch=master(repo)) as c:
        c.put_file_from_bytes("/a", b"a")
    # writing to repo@master outside a commit context: pachd makes and finishes a one-off commit
    pachd_client.pfs.put_file_from_bytes(
        commit=pfs.Commit.from_uri(f"{repo.as_uri()}@master"), path="/b", data=b"b"
    )
    head = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo.as_uri()}@master"))
    assert head.commit.id != c.id and is_set(head.finished) and head.parent_commit.id == c.id
    assert read(pachd_client, repo, "master", "/a") == b"a"
    assert read(pachd_client, repo, "master", "/b") == b"b"


def test_branch_chain_propagation_shares_one_id(pachd_client):
    a, b, d = (
        make_repo(pachd_client, prefix="a"),
        make_repo(pachd_client, prefix="b"),
        make_repo(pachd_client, prefix="d"),
    )
    pachd_client.pfs.create_branch(branch=master(b), provenance=[master(a)])
    pachd_client.pfs.create_branch(branch=master(d), provenance=[master(b)])
    with pachd_client.pfs.commit(branch=master(a)) as c:
        c.put_file_from_bytes("/x", b"x")
    b_head = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{b.as_uri()}@master"))
    d_head = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{d.as_uri()}@master"))
    assert b_head.commit.id == d_head.commit.id == c.id
    assert b_head.origin.kind == pfs.OriginKind.AUTO
    assert [p.id for p in b_head.direct_provenance] == [c.id]
    # starting a commit on a branch with provenance is refused
    with pytest.raises(grpc.RpcError) as err:
        pachd_client.pfs.start_commit(branch=master(b))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # the downstream commits are open until finished (here by hand; pipelines do it for outputs)
    for repo in (b, d):
        pachd_client.pfs.finish_commit(commit=pfs.Commit.from_uri(f"{repo.as_uri()}@{c.id}"))
    infos = pachd_client.pfs.wait_commit_set(pfs.CommitSet(id=c.id))
    assert {i.commit.repo.name for i in infos} == {a.name, b.name, d.name}
    assert all(is_set(i.finished) for i in infos)
    walked = list(
        pachd_client.pfs.walk_commit_provenance(start=[pfs.CommitPicker.from_uri(f"{d.as_uri()}@{c.id}")])
    )
    assert [(w.commit.repo.name, w.commit.id) for w in walked] == [(b.name, c.id), (a.name, c.id)]
    sub = list(
        pachd_client.pfs.walk_commit_subvenance(start=[pfs.CommitPicker.from_uri(f"{a.as_uri()}@{c.id}")])
    )
    assert {w.commit.repo.name for w in sub} == {b.name, d.name}
    bprov = list(
        pachd_client.pfs.walk_branch_provenance(start=[pfs.BranchPicker.from_uri(f"{d.as_uri()}@master")])
    )
    assert [x.branch.repo.name for x in bprov] == [b.name, a.name]
    binfo = pachd_client.pfs.inspect_branch(branch=master(b))
    assert [x.repo.name for x in binfo.direct_provenance] == [a.name]
    assert [x.repo.name for x in binfo.subvenance] == [d.name]


def test_inspect_commit_set_includes_older_provenance(pachd_client):
    a, b, out = (
        make_repo(pachd_client, prefix="a"),
        make_repo(pachd_client, prefix="b"),
        make_repo(pachd_client, prefix="o"),
    )
    with pachd_client.pfs.commit(branch=master(b)) as old:
        old.put_file_from_bytes("/b", b"b")
    pachd_client.pfs.create_branch(branch=master(out), provenance=[master(a), master(b)])
    with pachd_client.pfs.commit(branch=master(a)) as new:
        new.put_file_from_bytes("/a", b"a")
    infos = list(pachd_client.pfs.inspect_commit_set(commit_set=pfs.CommitSet(id=new.id)))
    pairs = [(i.commit.repo.name, i.commit.id) for i in infos]
    assert (b.name, old.id) in pairs and (a.name, new.id) in pairs and (out.name, new.id) in pairs
    assert pairs.index((out.name, new.id)) > pairs.index((a.name, new.id))  # topological order
    sets = {s.commit_set.id for s in pachd_client.pfs.list_commit_set()}
    assert new.id in sets and old.id in sets


def test_wait_commit_blocks_until_finished(pachd_client):
    repo = make_repo(pachd_client)
    commit = pachd_client.pfs.start_commit(branch=master(repo))
    result = {}

    def waiter():
        result["info"] = pachd_client.pfs.wait_commit(commit)

    thread = threading.Thread(target=waiter)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "wait_commit returned before the commit was finished"
    pachd_client.pfs.finish_commit(commit=commit)
    thread.join(10)
    assert is_set(result["info"].finished)


def test_subscribe_commit_streams_new_commits(pachd_client):
    repo = make_repo(pachd_client)
    with pachd_client.pfs.commit(branch=master(repo)) as first:
        pass
    stream = pachd_client.pfs.subscribe_commit(repo=repo, branch="master", state=pfs.CommitState.FINISHED)
    assert next(stream).commit.id == first.id
    with pachd_client.pfs.commit(branch=master(repo)) as second:
        pass
    assert next(stream).commit.id == second.id
    stream.close()


def test_create_branch_with_head_rolls_back_and_propagates(pachd_client):
    src, down = make_repo(pachd_client, prefix="src"), make_repo(pachd_client, prefix="down")
    with pachd_client.pfs.commit(branch=master(src)) as c1:
        c1.put_file_from_bytes("/v", b"1")
    with pachd_client.pfs.commit(branch=master(src)) as c2:
        c2.put_file_from_bytes("/v", b"2")
    pachd_client.pfs.create_branch(branch=master(down), provenance=[master(src)])
    before = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{down.as_uri()}@master"))
    pachd_client.pfs.finish_commit(commit=before.commit)
    pachd_client.pfs.create_branch(branch=master(src), head=pfs.Commit.from_uri(f"{src.as_uri()}@{c1.id}"))
    assert read(pachd_client, src, "master", "/v") == b"1"
    head = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{down.as_uri()}@master"))
    assert head.commit.id not in (c1.id, c2.id, before.commit.id)
    assert head.origin.kind == pfs.OriginKind.AUTO
    assert [p.id for p in head.direct_provenance] == [c1.id]
    assert head.parent_commit.id == before.commit.id


def test_edit_metadata_all_targets(pachd_client):
    project = unique_name("proj")
    pachd_client.pfs.create_project(project=pfs.Project(name=project))
    repo = make_repo(pachd_client, project)
    with pachd_client.pfs.commit(branch=master(repo)) as c:
        c.put_file_from_bytes("/a", b"a")
    commit_picker = pfs.CommitPicker.from_uri(f"{repo.as_uri()}@{c.id}")
    pachd_client.metadata.edit_metadata(
        edits=[
            metadata.Edit(
                project=pfs.ProjectPicker(name=project), replace=metadata.EditReplace(replacement={"p": "1"})
            ),
            metadata.Edit(repo=repo.as_picker(), add_key=metadata.EditAddKey(key="r", value="2")),
            metadata.Edit(branch=master(repo).as_picker(), edit_key=metadata.EditEditKey(key="b", value="3")),
            metadata.Edit(
                commit=commit_picker, add_key=metadata.EditAddKey(key="mlflow.run_id", value="abc")
            ),
            metadata.Edit(commit=commit_picker, add_key=metadata.EditAddKey(key="gone", value="x")),
            metadata.Edit(commit=commit_picker, delete_key=metadata.EditDeleteKey(key="gone")),
        ]
    )
    assert pachd_client.pfs.inspect_project(project=pfs.Project(name=project)).metadata == {"p": "1"}
    assert pachd_client.pfs.inspect_repo(repo=repo).metadata == {"r": "2"}
    assert pachd_client.pfs.inspect_branch(branch=master(repo)).metadata == {"b": "3"}
    assert pachd_client.pfs.inspect_commit(commit=c).metadata == {"mlflow.run_id": "abc"}
    # add_key on an existing key fails, and the whole request is one transaction
    with pytest.raises(grpc.RpcError) as err:
        pachd_client.metadata.edit_metadata(
            edits=[
                metadata.Edit(commit=commit_picker, edit_key=metadata.EditEditKey(key="new", value="n")),
                metadata.Edit(
                    commit=commit_picker, add_key=metadata.EditAddKey(key="mlflow.run_id", value="x")
                ),
            ]
        )
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "already exists" in err.value.details()
    assert pachd_client.pfs.inspect_commit(commit=c).metadata == {"mlflow.run_id": "abc"}


def test_version_and_cluster(pachd_client):
    version = pachd_client.get_version()
    assert (version.major, version.minor) == (2, 12)
    cluster = pachd_client.admin.inspect_cluster()
    assert cluster.id


def test_diff_and_clear_and_drop(pachd_client):
    repo = make_repo(pachd_client)
    with pachd_client.pfs.commit(branch=master(repo)) as c1:
        c1.put_file_from_bytes("/same", b"s")
        c1.put_file_from_bytes("/changed", b"1")
    with pachd_client.pfs.commit(branch=master(repo)) as c2:
        c2.put_file_from_bytes("/changed", b"2")
        c2.put_file_from_bytes("/added", b"+")
    diff = list(pachd_client.pfs.diff_file(new_file=pfs.File.from_uri(f"{repo.as_uri()}@{c2.id}:/")))
    assert sorted(d.new_file.file.path for d in diff) == ["/added", "/changed"]
    open_commit = pachd_client.pfs.start_commit(branch=master(repo))
    pachd_client.pfs.put_file_from_bytes(commit=open_commit, path="/tmp", data=b"t")
    pachd_client.pfs.clear_commit(commit=open_commit)
    pachd_client.pfs.finish_commit(commit=open_commit)
    files = [
        f.file.path for f in pachd_client.pfs.list_file(file=pfs.File.from_uri(f"{repo.as_uri()}@master:/"))
    ]
    assert files == ["/added", "/changed", "/same"]  # ClearCommit drops only this commit's changes
    pachd_client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=open_commit.id))
    head = pachd_client.pfs.inspect_commit(commit=pfs.Commit.from_uri(f"{repo.as_uri()}@master"))
    assert head.commit.id == c2.id


def test_concurrent_clients(pachd_server):
    """Many threads with their own clients: separate repos, and many writers into one open commit."""
    shared = make_repo(pachd_server.client(), prefix="shared")
    open_commit = pachd_server.client().pfs.start_commit(branch=master(shared))
    errors: list[BaseException] = []

    def own_repo(i: int) -> None:
        try:
            client = pachd_server.client()
            repo = make_repo(client, prefix=f"c{i}")
            for n in range(3):
                with client.pfs.commit(branch=master(repo)) as c:
                    c.put_file_from_bytes(f"/f{n}", f"{i}-{n}".encode())
            assert read(client, repo, "master", "/f2") == f"{i}-2".encode()
            client.pfs.put_file_from_bytes(commit=open_commit, path=f"/w{i}", data=str(i).encode() * 1000)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=own_repo, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    client = pachd_server.client()
    client.pfs.finish_commit(commit=open_commit)
    names = [f.file.path for f in client.pfs.list_file(file=pfs.File(commit=open_commit, path="/"))]
    assert names == [f"/w{i}" for i in range(8)]


def test_find_commits_that_changed_a_path(pachd_client):
    repo = make_repo(pachd_client)
    ids = []
    for content in (b"1", None, b"2"):
        with pachd_client.pfs.commit(branch=master(repo)) as c:
            c.put_file_from_bytes("/other", str(len(ids)).encode())
            if content is not None:
                c.put_file_from_bytes("/tracked", content)
        ids.append(c.id)
    responses = list(
        pachd_client.pfs.find_commits(
            start=pfs.Commit.from_uri(f"{repo.as_uri()}@master"), file_path="/tracked"
        )
    )
    found = [r.found_commit.id for r in responses if r.found_commit and r.found_commit.id]
    assert found == [ids[2], ids[0]]
    assert responses[-1].last_searched_commit.id == ids[0]


def test_get_file_offset_glob_and_pagination(pachd_client):
    repo = make_repo(pachd_client)
    with pachd_client.pfs.commit(branch=master(repo)) as c:
        for name in ("a", "b", "c", "d"):
            c.put_file_from_bytes(f"/{name}.txt", name.encode() * 10)
    uri = f"{repo.as_uri()}@master"
    chunks = pachd_client.pfs.get_file(file=pfs.File.from_uri(f"{uri}:/b.txt"), offset=7)
    assert b"".join(ch.value for ch in chunks) == b"bbb"
    only = b"".join(ch.value for ch in pachd_client.pfs.get_file(file=pfs.File.from_uri(f"{uri}:/c*")))
    assert only == b"c" * 10  # GetFile paths are globs; exactly one match is fine
    page = pachd_client.pfs.list_file(
        file=pfs.File.from_uri(f"{uri}:/"), pagination_marker=pfs.File.from_uri(f"{uri}:/b.txt"), number=1
    )
    assert [f.file.path for f in page] == ["/c.txt"]
    back = pachd_client.pfs.list_file(file=pfs.File.from_uri(f"{uri}:/"), reverse=True, number=2)
    assert [f.file.path for f in back] == ["/d.txt", "/c.txt"]
