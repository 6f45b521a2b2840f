"""``pachflow rm``: the command split's failure message gives for a bad file already in a repo."""

from __future__ import annotations

from pachyderm_sdk.api import pfs

from pachflow.upload import RepoUpload, plan_upload, push_commit_set
from pachflow_tools import rm_cli
from tests.fixtures.pachd import unique_name


def test_rm_removes_the_file_in_a_new_commit_and_names_what_is_missing(pachd_server, tmp_path, capsys):
    client = pachd_server.client()
    repo = unique_name("raw")
    ref = pfs.Repo(name=repo, type="user", project=pfs.Project(name="default"))
    client.pfs.create_repo(repo=ref)
    (tmp_path / "good.csv").write_text("a\n1\n")
    (tmp_path / "junk.csv").write_text("junk\n")
    branch = pfs.Branch(repo=ref, name="master")
    first = push_commit_set(client, [RepoUpload(branch, plan_upload(str(tmp_path)))]).commit_id
    address = ["--pachd-address", f"{pachd_server.host}:{pachd_server.port}"]

    assert rm_cli.main([f"{repo}@master:/junk.csv", *address]) == 0
    head = client.pfs.inspect_branch(branch=branch).head
    assert head.id != first and "removed 1 file(s)" in capsys.readouterr().out
    assert [i.file.path for i in client.pfs.list_file(file=pfs.File(commit=head, path="/"))] == ["/good.csv"]

    for args, message in [
        ([f"{repo}@master:/junk.csv"], f"default/{repo}@master has no file /junk.csv"),
        ([f"{repo}@dev:/good.csv"], f"default/{repo} has no branch 'dev'"),
        ([f"{repo}@master"], "expected [PROJECT/]REPO@BRANCH:/PATH"),
    ]:
        assert rm_cli.main([*args, *address]) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
