"""/v1/stats and /v1/export: thin views over counts, timings, the summary and the CTDC export. Analysts
only; `suppress=false` (admins) is audited before anything is read."""
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel

from runtime.service import get_uow
from runtime.uow import UnitOfWork
from services.reporting.stats import ctdc_export
from services.reporting.stats.counts import CountQuery, count_table, tidy
from services.reporting.stats.measures import MEASURES
from services.reporting.stats.params import Params, StatsParams, query_error
from services.reporting.stats.render import answer, audit_unsuppressed, described, lag_of
from services.reporting.stats.summary import headline
from services.reporting.stats.timings import TIMINGS, timing_rows

router = APIRouter(tags=["stats"])
Uow = Annotated[UnitOfWork, Depends(get_uow)]
CSV = {"text/csv": {"schema": {"type": "string"}}}


def _k(request: Request, params: StatsParams) -> int | None:
    return request.app.state.settings.reporting_suppression_k if params.suppress else None


def _query(params: StatsParams, measure: str) -> CountQuery:
    return CountQuery(MEASURES[measure], params.start, params.end, params.group, params.by, params.filters)


class MeasureInfo(BaseModel):
    name: str
    unit: str
    description: str
    by: dict[str, str]
    filters: list[str]


@router.get("/v1/stats", response_model=list[MeasureInfo], summary="What can be counted")
async def measures(_: Params) -> list[MeasureInfo]:
    """Every measure, the dimensions it can be broken down by, and the filters it takes."""
    return [MeasureInfo(name=m.name, unit=m.unit, description=m.description,
                        by={d: dim.description for d, dim in m.dims.items()}, filters=sorted(m.filters))
            for m in MEASURES.values()]


@router.get("/v1/stats/summary", responses={200: {"content": CSV}}, summary="The headline figures")
async def summary(request: Request, params: Params, uow: Uow) -> Response:
    """The hotline's published figures for a period: contacts (and by type), cases reported and referred,
    potential victims, victims assisted, referrals, alerts and outcomes. Filters apply to the figures
    that have them (`group` and `by` are ignored)."""
    await audit_unsuppressed(uow, request, params)
    k = _k(request, params)
    rows = await headline(uow.session, _query(params, "cases"), k)
    return answer(params, described(params, k, measure="summary"), rows, await lag_of(uow, request), "summary")


def _timing_view(name: str):
    timing = TIMINGS[name]

    async def view(request: Request, params: Params, uow: Uow) -> Response:
        params.for_measure(timing.measure, allowed_by=timing.by)
        await audit_unsuppressed(uow, request, params)
        k = _k(request, params)
        rows = await timing_rows(uow.session, timing, _query(params, timing.measure.name), k)
        body = described(params, k, measure=name, description=timing.description)
        return answer(params, body, rows, await lag_of(uow, request), name.replace("/", "-"))

    view.__doc__ = f"{timing.description} Breakdowns: {', '.join(timing.by)}. Times are in seconds."
    return view


for _name in TIMINGS:
    router.add_api_route(f"/v1/stats/{_name}", _timing_view(_name), methods=["GET"], responses={200: {"content": CSV}},
                         summary=TIMINGS[_name].description.split(",")[0].split(".")[0], name=_name)


@router.get("/v1/stats/{measure}", responses={200: {"content": CSV}}, summary="A count table")
async def counts(request: Request, params: Params, uow: Uow,
                 measure: Annotated[str, Path(description=f"One of: {', '.join(MEASURES)}.")]) -> Response:
    """Counts of a measure per period and per category of `by`, with margins ('all') where categories do
    not overlap. Counts below k are suppressed, with as many more as it takes that no suppressed count can
    be worked out from the published ones."""
    if measure not in MEASURES:
        raise query_error("measure", f"unknown measure {measure!r}; one of: {', '.join(MEASURES)}")
    m = MEASURES[measure]
    params.for_measure(m)
    await audit_unsuppressed(uow, request, params)
    k = _k(request, params)
    table = await count_table(uow.session, _query(params, measure), k)
    body = described(params, k, measure=measure, unit=m.unit, description=m.description,
                     margins=table.query.margins)
    body["suppression"] |= {"primary": table.published.suppressed_primary,
                            "complementary": table.published.suppressed_complementary}
    return answer(params, body, tidy(table), await lag_of(uow, request), measure)


@router.get("/v1/export/ctdc", responses={200: {"content": CSV}}, summary="CTDC case-level export")
async def ctdc(request: Request, params: Params, uow: Uow) -> Response:
    """Potential victims of the cases reported in the range, one row each in CTDC's variable layout,
    k-anonymous over sex, age band, citizenship, country of exploitation and exploitation type: generalised
    first, then the records still in classes smaller than k suppressed. The report says how many."""
    params.for_measure(MEASURES["victims"], allowed_by=())
    if not params.suppress:
        raise query_error("suppress", "the CTDC export is always k-anonymous: it is published data")
    settings = request.app.state.settings
    result = await ctdc_export.build(uow.session, _query(params, "victims"), settings.reporting_ctdc_k,
                                     settings.reporting_ctdc_max_suppression)
    body = described(params, None, measure="ctdc-export", columns=result.columns,
                     report=ctdc_export.report_dict(result))
    body["suppression"] = {"k": settings.reporting_ctdc_k, "applied": True}
    return answer(params, body, result.rows, await lag_of(uow, request), "ctdc-export", result.columns)
