"""The CTDC export's records: one per potential victim of the cases reported in the range, built from the
projections (codes only), then anonymised by privacy/ctdc.py."""
from dataclasses import asdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.reporting.privacy.ctdc import CtdcExport, VictimRecord, export
from services.reporting.stats.counts import CountQuery, bound, where_sql

_RECORD = ["extract(year FROM k.day)::int", "v.sex", "v.age_band", "v.is_child", "v.nationality",
           "coalesce(k.abroad_country, k.destination_country, 'VN')", "k.exploitation", "k.means_of_control",
           "v.needs", "k.recruitment_channel"]


async def build(session: AsyncSession, q: CountQuery, k: int, max_suppression: float) -> CtdcExport:
    sql = f"SELECT {', '.join(_RECORD)} FROM {q.measure.source} WHERE {where_sql(q)} ORDER BY k.day, v.case_id, v.seq"
    records = [VictimRecord(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6]), tuple(r[7]), tuple(r[8]), r[9])
               for r in (await session.execute(text(sql), bound(q))).all()]
    return export(records, k=k, max_suppression_rate=max_suppression)


def report_dict(result: CtdcExport) -> dict[str, Any]:
    return asdict(result.report)
