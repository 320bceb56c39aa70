"""Exports: ADMIN only, CSV per section (zipped), JSON equal to the query, a PDF whose text
carries the query's figures, and download links bound to one job of one organization."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import httpx
import pypdf
from starlette.applications import Starlette
from starlette.routing import Route

from app.accounts.models import Role
from app.analytics import exports
from app.analytics.models import ExportJob
from app.audit.models import AuditEntry
from app.kit.clock import utcnow
from app.onboarding.states import TaskAction
from app.web.exports import download_endpoint
from tests.analytics.support import drain
from tests.graphql.client import SETTINGS, error_codes, gql, token
from tests.support.factories import Tenant

EXPORT = """mutation($input: ExportAnalyticsInput!) { exportAnalytics(input: $input) {
  id status progress rowCount filename downloadUrl sections format } }"""
JOB = "query($id: ID!) { exportJob(id: $id) { id status progress rowCount downloadUrl } }"


async def _some_history(tenant: Tenant) -> None:
    risky = await tenant.customer(user_type="=hyperlink(x)", acquisition_channel="+referral")
    plain = await tenant.customer(user_type="smb")
    for key in ("verify_email", "complete_profile"):
        await tenant.act(risky.id, key, TaskAction.COMPLETE)
    await tenant.act(plain.id, "verify_email", TaskAction.COMPLETE)
    await drain(tenant)


async def _download(url: str) -> httpx.Response:
    app = Starlette(routes=[Route("/exports/{job_id}/download", download_endpoint(SETTINGS))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://liftoff.test"
    ) as client:
        return await client.get(url.replace("http://liftoff.test", ""))


async def _export(tenant: Tenant, input: dict[str, Any]) -> dict[str, Any]:
    admin = token(tenant.id, Role.ADMIN, subject=tenant.admin.subject)
    body = await gql(EXPORT, {"input": input}, token=admin)
    assert "errors" not in body, body
    job: dict[str, Any] = body["data"]["exportAnalytics"]
    return job


async def test_csv_export_is_one_file_per_section_zipped_and_formula_safe(tenant: Tenant) -> None:
    await _some_history(tenant)
    job = await _export(tenant, {"format": "CSV", "sections": ["OVERVIEW", "FUNNEL", "COHORTS"]})
    assert job["status"] == "DONE" and job["progress"] == 100.0
    assert job["filename"].endswith(".zip") and job["downloadUrl"]
    response = await _download(job["downloadUrl"])
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == [
        "cohorts.csv",
        "funnel.csv",
        "overview.csv",
        "retention.csv",
    ]
    overview = archive.read("overview.csv").decode().splitlines()
    assert overview[0] == "metric,value" and "customers,2" in overview
    cohorts = archive.read("cohorts.csv").decode()
    assert "'=hyperlink(x)" in cohorts and "'+referral" in cohorts
    assert ",=hyperlink" not in cohorts and ",+referral" not in cohorts
    rows = sum(len(archive.read(n).decode().splitlines()) - 1 for n in archive.namelist())
    assert job["rowCount"] == rows
    [entry] = await AuditEntry.filter(organization_id=tenant.id, action="analytics.export")
    assert (entry.actor, entry.actor_role, entry.target_id) == (
        tenant.admin.subject,
        "ADMIN",
        job["id"],
    )
    assert entry.after["rowCount"] == rows and entry.after["format"] == "CSV"
    assert entry.after["sections"] == ["OVERVIEW", "FUNNEL", "COHORTS"]
    assert entry.after["filter"]["from"] and entry.created_at


async def test_json_export_is_the_query_with_filter_and_time(tenant: Tenant) -> None:
    await _some_history(tenant)
    job = await _export(
        tenant,
        {"format": "JSON", "sections": ["OVERVIEW", "FUNNEL"], "filter": {"userType": "smb"}},
    )
    document = json.loads((await _download(job["downloadUrl"])).content)
    assert document["filter"]["userType"] == "smb" and document["generatedAt"]
    direct = await gql(
        '{ analytics(filter: {userType: "smb"}) { overview { customers completed '
        "completionRate } funnel { stages { stageKey reached completed } } } }",
        token=token(tenant.id, Role.CSM),
    )
    overview = direct["data"]["analytics"]["overview"]
    assert {k: document["analytics"]["overview"][k] for k in overview} == overview
    assert overview["customers"] == 1
    stages = [
        {k: s[k] for k in ("stageKey", "reached", "completed")}
        for s in document["analytics"]["funnel"]["stages"]
    ]
    assert stages == direct["data"]["analytics"]["funnel"]["stages"]


async def test_customer_list_streams_every_customer_with_its_progress(tenant: Tenant) -> None:
    await _some_history(tenant)
    job = await _export(tenant, {"format": "CSV", "sections": ["CUSTOMERS"]})
    assert job["rowCount"] == 2 and job["filename"].endswith(".csv")
    lines = (await _download(job["downloadUrl"])).text.splitlines()
    assert lines[0].startswith("id,email,name,user_type") and len(lines) == 3
    assert any(",'=hyperlink(x),'+referral," in line for line in lines)


async def test_pdf_is_rendered_by_the_worker_with_the_query_figures(tenant: Tenant) -> None:
    await _some_history(tenant)
    sections = ["OVERVIEW", "FUNNEL", "COHORTS", "TRENDS", "FORECAST", "RECOMMENDATIONS"]
    job = await _export(tenant, {"format": "PDF", "sections": sections})
    assert job["status"] == "PENDING" and job["downloadUrl"] is None
    while await exports.run_next():
        pass
    admin = token(tenant.id, Role.ADMIN)
    done = (await gql(JOB, {"id": job["id"]}, token=admin))["data"]["exportJob"]
    assert done["status"] == "DONE" and done["progress"] == 100.0
    response = await _download(done["downloadUrl"])
    assert response.headers["content-type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(response.content))
    text = "\n".join(page.extract_text() for page in reader.pages)
    query = await gql(
        "{ analytics { overview { customers completed completionRate pointsAwarded } "
        "funnel { stages { name reached completed } } } }",
        token=admin,
    )
    data = query["data"]["analytics"]
    assert tenant.org.name in text and "Headline figures" in text
    assert f"Customers {data['overview']['customers']}" in text
    assert f"Points awarded {data['overview']['pointsAwarded']:,}" in text
    for stage in data["funnel"]["stages"]:
        assert f"{stage['name']} {stage['reached']} {stage['completed']}" in text
    for title in ("Funnel", "Cohorts", "Trends", "Forecast", "Recommendations"):
        assert title in text


async def test_csm_reads_analytics_but_cannot_export(tenant: Tenant) -> None:
    csm = token(tenant.id, Role.CSM)
    assert "errors" not in await gql("{ analytics { overview { customers } } }", token=csm)
    body = await gql(EXPORT, {"input": {"format": "CSV", "sections": ["OVERVIEW"]}}, token=csm)
    assert error_codes(body) == ["FORBIDDEN"]
    assert await ExportJob.filter(organization_id=tenant.id).count() == 0


async def test_download_links_refuse_other_jobs_expired_and_tampered_tokens(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await _export(tenant, {"format": "JSON", "sections": ["OVERVIEW"]})
    theirs = await _export(other_tenant, {"format": "JSON", "sections": ["OVERVIEW"]})
    assert (await _download(mine["downloadUrl"])).status_code == 200
    my_token = mine["downloadUrl"].split("token=")[1]
    other_job = f"/exports/{theirs['id']}/download?token={my_token}"
    refused = await _download(other_job)
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"
    row = await ExportJob.get(id=mine["id"])
    secret = SETTINGS.resolved_secret_key()
    expired = exports.download_token(secret=secret, job=row, now=utcnow() - timedelta(hours=1))
    url = f"/exports/{mine['id']}/download?token="
    assert (await _download(url + expired)).status_code == 403
    head, payload, signature = my_token.split(".")
    flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    assert (await _download(url + f"{head}.{payload}.{flipped}")).status_code == 403
    forged = exports.download_token(secret="not-the-secret-" * 4, job=row)
    assert (await _download(url + forged)).status_code == 403
    assert (await _download(url)).status_code == 403
    row.organization_id = other_tenant.id  # a token naming another organization for this job
    assert (
        await _download(url + exports.download_token(secret=secret, job=row))
    ).status_code == 403
