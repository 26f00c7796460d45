"""A case-level export in the layout of CTDC's global victim dataset, k-anonymous over its quasi-identifiers.

Sources (copies of CTDC's own downloads and codebook; CTDC's site itself was not reachable from here):
- Column names and their order: the header of CTDC's k-anonymised Global Dataset download of 2020-04-14
  (63 columns), mirrored at https://raw.githubusercontent.com/alnoel/CUNYSPS-Data607/main/globaldataset_20200414.csv
  and shown again in github.com/nizamphoenix/human-trafficking, work.ipynb (the May 2020 download).
- Codings: gender "Female"/"Male"; ageBroad "0--8", "9--17", ... "48+"; majorityStatus "Adult"/"Minor";
  citizenship and CountryOfExploitation as ISO 3166-1 alpha-2; is*/meansOfControl* flags 0/1; a missing value
  is -99 in every column, text or flag (nizamphoenix/human-trafficking work.ipynb, its data and value counts;
  github.com/benjaminleroy/sure2018 Dev/ta_preprocessing_data/pre_processing_data_cleaning.Rmd, for the
  27 Nov 2017 download: -99 missing, "ZZ" unknown country). typeOfExploitConcatenated joins CTDC's labels with
  ";", e.g. "Forced labour;Sexual exploitation;Combined sexual and labour exploitation" (value listings of the
  2017-2020 download in public analyses).
- k = 11, and that CTDC reaches it by redacting cases: CTDC Data Codebook v6 (November 2017),
  https://scribd.com/document/531370211/CTDC-codebook-v6-0, and https://www.ctdatacollaborative.org/global-dataset.

Not confirmed, so chosen here (change the tables below if CTDC's codebook says otherwise):
- the concatenated labels "Forced military", "Organ removal" (their is* columns are confirmed) and
  "Debt bondage" in meansOfControlConcatenated (the other 16 labels were seen; ";" as its separator is assumed);
- Datasource "Hotline" (only "Case Management" was seen);
- Sex.other: the 2017-2020 layout has no such gender, so it is written -99. (The 2024+ synthetic dataset is a
  different layout: "Man"/"Woman"/"Trans/Transgender/NonConforming", alpha-3 countries, empty for missing.
  This module follows the k-anonymised one.)
- isOtherExploit is 1 only for CTDC's own "Other" type, not for forced marriage, military or organ removal.
- The generalised labels ("0--17", "18--29", "18+", the regions, the broad types) are ours: CTDC only redacts.

Layout: the CTDC columns this hotline can fill, in CTDC's order (COLUMNS). Left out, because reporting
holds nothing for them: majorityStatusAtExploit, majorityEntry, typeOfLabour*, typeOfSex*, isAbduction,
RecruiterRelationship, recruiterRelation*. (Recruitment *channel* is not CTDC's recruiter *relationship*, so it
is not exported.) After the CTDC block come our own need* flags (EXTENSION_COLUMNS), which CTDC does not have.

Anonymisation ("generalise first, suppress second"): every quasi-identifier (QI) has a hierarchy of levels,
exact first, fully generalised last (HIERARCHIES; a fully generalised column reads -99, CTDC's missing code).
Every combination of levels (the lattice; 384 nodes for the five default QIs) is a candidate; among the
nodes whose undersized classes hold at most max_suppression_rate of the records, the one losing least information
wins (loss = sum over QIs of level / top level, Sweeney's precision metric, so dropping gender altogether
costs more than countries → regions; ties: fewer suppressed, lower sum of levels, then the level vector).
If no node is within budget (only when there are fewer than k records), the node suppressing least wins.
Then every record whose class over the generalised QIs has fewer than k members is dropped, and the report
says how many. A class is the set of rows with equal values in all QI columns; each QI's columns are a
function of its generalised value alone, so a column never tells more than its QI's level allows:
- ageBroad and majorityStatus move together (majority status comes from the band; from is_child only when
  the band is unknown, since is_child may be a case-level fact about another victim);
- the is* flags are 0/1 only where the generalised type decides them and -99 ("not disclosed") otherwise:
  "Sexual (broad)" gives isSexualExploit 1, isForcedLabour 0, isSexAndLabour 0 and -99 for the other five.

Not QIs by default, and written exactly: means of control, needs and the year of registration. The year is
a likely QI too (a known registration year narrows a victim down); pass
quasi_identifiers=DEFAULT_QIS + ("year_of_registration",) to protect it. Rare means-of-control or needs
combinations stay visible: the export is k-anonymous over its QIs, not over every column.
Rows are sorted by their values, so the input's order (e.g. registration order) never shows.
Each export is k-anonymous on its own: two releases over overlapping periods can be differenced (a victim
registered between them may stand alone in the difference), so publish disjoint periods, or one cumulative file.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from itertools import product

from schemas.vocab import (
    EXPLOITATION_MAP, AgeBand, CtdcExploitation, Exploitation, MeansOfControl, Need, RecruitmentChannel, Sex,
)

Cell = str | int
Values = tuple[Cell, ...]

DEFAULT_K = 11  # CTDC's
MISSING = "-99"  # CTDC's code for a value not recorded, in text columns; also what a fully generalised QI shows
MISSING_FLAG = -99  # the same in numeric columns
DATASOURCE = "Hotline"

# ---- the record reporting hands over ------------------------------------------------------------------------


@dataclass(frozen=True)
class VictimRecord:
    """One victim, as codes only (reporting never holds a name, a phone number or free text)."""

    year_of_registration: int
    sex: str  # Sex
    age_band: str  # AgeBand, "unknown" included
    is_child: bool
    citizenship: str | None  # ISO 3166-1 alpha-2
    exploitation_country: str | None  # ISO 3166-1 alpha-2
    exploitation: tuple[str, ...]  # Exploitation
    means_of_control: tuple[str, ...]  # MeansOfControl
    needs: tuple[str, ...]  # Need
    recruitment_channel: str | None  # RecruitmentChannel (validated, not exported)


# ---- CTDC's codes ------------------------------------------------------------------------------------------

GENDER = {Sex.female: "Female", Sex.male: "Male", Sex.other: MISSING, Sex.unknown: MISSING}
AGE_BROAD = {
    AgeBand.a0_8: "0--8", AgeBand.a9_17: "9--17", AgeBand.a18_20: "18--20", AgeBand.a21_23: "21--23",
    AgeBand.a24_26: "24--26", AgeBand.a27_29: "27--29", AgeBand.a30_38: "30--38", AgeBand.a39_47: "39--47",
    AgeBand.a48_plus: "48+", AgeBand.unknown: MISSING,
}
MINOR, ADULT = "Minor", "Adult"

# CTDC's type of exploitation: its flag column and its label in typeOfExploitConcatenated, in CTDC's order.
EXPLOITATION_COLUMNS = {
    CtdcExploitation.forced_labour: ("isForcedLabour", "Forced labour"),
    CtdcExploitation.sexual_exploitation: ("isSexualExploit", "Sexual exploitation"),
    CtdcExploitation.other: ("isOtherExploit", "Other"),
    # isSexAndLabour / "Combined sexual and labour exploitation" comes here: forced labour and sexual together
    CtdcExploitation.forced_marriage: ("isForcedMarriage", "Forced marriage"),
    CtdcExploitation.forced_military: ("isForcedMilitary", "Forced military"),
    CtdcExploitation.organ_removal: ("isOrganRemoval", "Organ removal"),
    CtdcExploitation.slavery_and_practices: ("isSlaveryAndPractices", "Slavery and similar practices"),
}
SEX_AND_LABOUR = ("isSexAndLabour", "Combined sexual and labour exploitation")
EXPLOIT_FLAGS = ("isForcedLabour", "isSexualExploit", "isOtherExploit", "isSexAndLabour", "isForcedMarriage",
                 "isForcedMilitary", "isOrganRemoval", "isSlaveryAndPractices")
CONCAT_SEPARATOR = ";"

MEANS_COLUMNS = {  # CTDC's 17 means-of-control flags and their labels in meansOfControlConcatenated
    MeansOfControl.debt_bondage: ("meansOfControlDebtBondage", "Debt bondage"),
    MeansOfControl.takes_earnings: ("meansOfControlTakesEarnings", "Takes earnings"),
    MeansOfControl.restricts_financial_access: ("meansOfControlRestrictsFinancialAccess", "Restricts financial access"),
    MeansOfControl.threats: ("meansOfControlThreats", "Threats"),
    MeansOfControl.psychological_abuse: ("meansOfControlPsychologicalAbuse", "Psychological abuse"),
    MeansOfControl.physical_abuse: ("meansOfControlPhysicalAbuse", "Physical abuse"),
    MeansOfControl.sexual_abuse: ("meansOfControlSexualAbuse", "Sexual abuse"),
    MeansOfControl.false_promises: ("meansOfControlFalsePromises", "False promises"),
    MeansOfControl.psychoactive_substances: ("meansOfControlPsychoactiveSubstances", "Psychoactive substances"),
    MeansOfControl.restricts_movement: ("meansOfControlRestrictsMovement", "Restricts movement"),
    MeansOfControl.restricts_medical_care: ("meansOfControlRestrictsMedicalCare", "Restricts medical care"),
    MeansOfControl.excessive_working_hours: ("meansOfControlExcessiveWorkingHours", "Excessive working hours"),
    MeansOfControl.uses_children: ("meansOfControlUsesChildren", "Uses children"),
    MeansOfControl.threat_of_law_enforcement: ("meansOfControlThreatOfLawEnforcement", "Threat of law enforcement"),
    MeansOfControl.withholds_necessities: ("meansOfControlWithholdsNecessities", "Withholds necessities"),
    MeansOfControl.withholds_documents: ("meansOfControlWithholdsDocuments", "Withholds documents"),
    MeansOfControl.other: ("meansOfControlOther", "Other"),
}
MEANS_NOT_SPECIFIED = "meansOfControlNotSpecified"  # CTDC's; always 0 when means are known (ours are specific)
MEANS_CONCATENATED = "meansOfControlConcatenated"

NEED_COLUMNS = {  # ours, after the CTDC block: CTDC has no needs
    Need.medical: "needMedical", Need.psychological: "needPsychological", Need.shelter: "needShelter",
    Need.legal_aid: "needLegalAid", Need.repatriation: "needRepatriation", Need.documents: "needDocuments",
    Need.travel_and_meals: "needTravelAndMeals", Need.vocational_training: "needVocationalTraining",
    Need.financial_support: "needFinancialSupport", Need.other: "needOther",
}

COLUMNS: tuple[str, ...] = (  # CTDC's order (see the module docstring for the columns left out)
    "yearOfRegistration", "Datasource", "gender", "ageBroad", "majorityStatus", "citizenship",
    *(column for column, _ in MEANS_COLUMNS.values()), MEANS_NOT_SPECIFIED, MEANS_CONCATENATED,
    *EXPLOIT_FLAGS, "typeOfExploitConcatenated", "CountryOfExploitation",
)
EXTENSION_COLUMNS: tuple[str, ...] = tuple(NEED_COLUMNS.values())
NUMERIC_COLUMNS = frozenset({"yearOfRegistration", *EXPLOIT_FLAGS, MEANS_NOT_SPECIFIED,
                             *(column for column, _ in MEANS_COLUMNS.values()), *EXTENSION_COLUMNS})

# ISO 3166-1 alpha-2, all 249 officially assigned codes, plus XK (Kosovo, user-assigned but in common use).
ISO_ALPHA2 = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO
JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR
MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO
RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV
TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW XK
""".split())

# ---- generalisation hierarchies: edit the tables, the levels follow ----------------------------------------

# ageBroad: CTDC band → broad band (unions of CTDC bands). majorityStatus → the label ageBroad shows then.
BROAD_AGE = {"0--8": "0--17", "9--17": "0--17", "18--20": "18--29", "21--23": "18--29", "24--26": "18--29",
             "27--29": "18--29", "30--38": "30--47", "39--47": "30--47", "48+": "48+", MISSING: MISSING}
MAJORITY_OF_BAND = {"0--8": MINOR, "9--17": MINOR, "18--20": ADULT, "21--23": ADULT, "24--26": ADULT,
                    "27--29": ADULT, "30--38": ADULT, "39--47": ADULT, "48+": ADULT}
AGE_OF_MAJORITY = {MINOR: "0--17", ADULT: "18+", MISSING: MISSING}

# citizenship / CountryOfExploitation: country → region (first match; else REST_OF_WORLD) → home or abroad.
HOME = "VN"
ABROAD = "Abroad"
REST_OF_WORLD = "Rest of world"
REGIONS: dict[str, frozenset[str]] = {
    HOME: frozenset({HOME}),
    "Neighbour: CN/KH/LA": frozenset({"CN", "KH", "LA"}),  # the land neighbours
    "Other Asia": frozenset(  # UN M49 Asia, with TW
        "AE AF AM AZ BD BH BN BT CY GE HK ID IL IN IQ IR JO JP KG KP KR KW KZ LB LK MM MN MO MV MY NP OM PH PK PS "
        "QA SA SG SY TH TJ TL TM TR TW UZ YE".split()),
}

# typeOfExploitConcatenated: CTDC type → broad type. The broad labels differ from every CTDC label.
BROAD_SEXUAL_AND_LABOUR = "Sexual and labour (broad)"
BROAD_SEXUAL = "Sexual (broad)"
BROAD_LABOUR = "Labour (broad)"
BROAD_OTHER = "Other (broad)"
YEARS_PER_PERIOD = 5  # yearOfRegistration, when it is a QI: year → "2020--2024" → -99


@dataclass(frozen=True)
class Level:
    name: str
    apply: Callable[[Values], Values]  # the exact values of the hierarchy's columns → their values at this level


@dataclass(frozen=True)
class Hierarchy:
    """A quasi-identifier: the CTDC columns it fills and its levels, exact first, fully generalised last.
    Each level must be a function of the one before (checked on every export)."""

    name: str  # as VictimRecord names the field
    columns: tuple[str, ...]
    exact: Callable[[VictimRecord], Values]  # the record's values of `columns`, ungeneralised
    levels: tuple[Level, ...]


def _missing(columns: Sequence[str]) -> Values:
    return tuple(MISSING_FLAG if column in NUMERIC_COLUMNS else MISSING for column in columns)


def _same(values: Values) -> Values:
    return values


def _fully(columns: Sequence[str]) -> Level:
    blank = _missing(columns)
    return Level("*", lambda _values: blank)


def _age(record: VictimRecord) -> Values:
    band = AGE_BROAD[record.age_band]
    if band in MAJORITY_OF_BAND:
        return band, MAJORITY_OF_BAND[band]
    return band, (MINOR if record.is_child else MISSING)


def region_of(code: Cell) -> Cell:
    if code == MISSING:
        return MISSING
    return next((name for name, codes in REGIONS.items() if code in codes), REST_OF_WORLD)


def _home_or_abroad(region: Cell) -> Cell:
    return region if region in (HOME, MISSING) else ABROAD


def _country(name: str, column: str) -> Hierarchy:
    return Hierarchy(name, (column,), lambda record: (getattr(record, name) or MISSING,), (
        Level("country", _same),
        Level("region", lambda v: (region_of(v[0]),)),
        Level("Viet Nam or abroad", lambda v: (_home_or_abroad(region_of(v[0])),)),
        _fully((column,)),
    ))


def _exploitation(record: VictimRecord) -> Values:
    return _exploitation_values(tuple(record.exploitation))


@lru_cache(maxsize=4096)
def _exploitation_values(recorded: tuple[str, ...]) -> Values:
    """typeOfExploitConcatenated and the eight is* flags; -99 throughout when no type was recorded."""
    types = {EXPLOITATION_MAP[Exploitation(value)][1] for value in recorded}
    if not types:
        return (MISSING, *_missing(EXPLOIT_FLAGS))
    flags = {column: int(kind in types) for kind, (column, _) in EXPLOITATION_COLUMNS.items()}
    flags[SEX_AND_LABOUR[0]] = int(flags["isForcedLabour"] and flags["isSexualExploit"])
    labels = dict([*EXPLOITATION_COLUMNS.values(), SEX_AND_LABOUR])
    concatenated = CONCAT_SEPARATOR.join(labels[column] for column in EXPLOIT_FLAGS if flags[column])
    return (concatenated, *(flags[column] for column in EXPLOIT_FLAGS))


def _broad_exploitation(values: Values) -> Values:
    """Only what the broad type decides: forced labour, sexual exploitation and both; -99 for the rest."""
    if values[0] == MISSING:
        return values
    flags = dict(zip(EXPLOIT_FLAGS, values[1:]))
    labour, sexual = flags["isForcedLabour"] == 1, flags["isSexualExploit"] == 1
    label = (BROAD_SEXUAL_AND_LABOUR if labour and sexual else BROAD_SEXUAL if sexual
             else BROAD_LABOUR if labour else BROAD_OTHER)
    decided = {"isForcedLabour": int(labour), "isSexualExploit": int(sexual), "isSexAndLabour": int(labour and sexual)}
    return (label, *(decided.get(column, MISSING_FLAG) for column in EXPLOIT_FLAGS))


def _period(values: Values) -> Values:
    start = int(values[0]) - int(values[0]) % YEARS_PER_PERIOD
    return (f"{start}--{start + YEARS_PER_PERIOD - 1}",)


SEX = Hierarchy("sex", ("gender",), lambda record: (GENDER[record.sex],), (
    Level("gender", _same), _fully(("gender",))))
AGE = Hierarchy("age_band", ("ageBroad", "majorityStatus"), _age, (
    Level("CTDC age band", _same),
    Level("broad age band", lambda v: (BROAD_AGE[v[0]], v[1])),
    Level("majority status", lambda v: (AGE_OF_MAJORITY[v[1]], v[1])),
    _fully(("ageBroad", "majorityStatus")),
))
CITIZENSHIP = _country("citizenship", "citizenship")
EXPLOITATION_COUNTRY = _country("exploitation_country", "CountryOfExploitation")
EXPLOITATION = Hierarchy("exploitation", ("typeOfExploitConcatenated", *EXPLOIT_FLAGS), _exploitation, (
    Level("CTDC type", _same),
    Level("broad type", _broad_exploitation),
    _fully(("typeOfExploitConcatenated", *EXPLOIT_FLAGS)),
))
YEAR = Hierarchy("year_of_registration", ("yearOfRegistration",), lambda record: (record.year_of_registration,), (
    Level("year", _same),
    Level(f"{YEARS_PER_PERIOD}-year period", _period),
    _fully(("yearOfRegistration",)),
))

HIERARCHIES: dict[str, Hierarchy] = {
    h.name: h for h in (SEX, AGE, CITIZENSHIP, EXPLOITATION_COUNTRY, EXPLOITATION, YEAR)}
DEFAULT_QIS: tuple[str, ...] = ("sex", "age_band", "citizenship", "exploitation_country", "exploitation")

# ---- the export ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QiGeneralisation:
    quasi_identifier: str
    level: int  # 0 = exact
    level_name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ExportReport:
    k: int
    max_suppression_rate: float
    records_in: int
    records_out: int
    records_suppressed: int
    generalisation: tuple[QiGeneralisation, ...]  # per QI, in the order given
    smallest_class_size: int | None  # None when nothing is published
    equivalence_classes: int  # published classes
    within_suppression_budget: bool  # False: no lattice node was, the least-suppressing one was taken

    @property
    def levels(self) -> dict[str, int]:
        return {g.quasi_identifier: g.level for g in self.generalisation}


@dataclass(frozen=True)
class CtdcExport:
    columns: list[str]
    rows: list[dict[str, Cell]]
    report: ExportReport
    quasi_identifier_columns: tuple[str, ...]  # the columns an equivalence class is defined over


_VOCABULARIES = {"exploitation": frozenset(Exploitation), "means_of_control": frozenset(MeansOfControl),
                 "needs": frozenset(Need)}
_CHANNELS = frozenset(RecruitmentChannel)


def _check(record: VictimRecord) -> None:
    """Every value must be a code of its vocabulary: nothing else can reach an export."""
    def fail(field: str, value: object) -> None:
        raise ValueError(f"VictimRecord.{field}: {value!r} is not a valid code")

    def code_in(value: object, vocabulary: Iterable) -> bool:
        return isinstance(value, str) and value in vocabulary

    year = record.year_of_registration
    if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 2999:
        fail("year_of_registration", year)
    if not code_in(record.sex, GENDER):
        fail("sex", record.sex)
    if not code_in(record.age_band, AGE_BROAD):
        fail("age_band", record.age_band)
    if not isinstance(record.is_child, bool):
        fail("is_child", record.is_child)
    for field in ("citizenship", "exploitation_country"):
        value = getattr(record, field)
        if value is not None and not code_in(value, ISO_ALPHA2):
            fail(field, value)
    for field, vocabulary in _VOCABULARIES.items():
        values = getattr(record, field)
        if isinstance(values, str) or not isinstance(values, (tuple, list)):
            fail(field, values)
        for value in values:
            if not code_in(value, vocabulary):
                fail(field, value)
    if record.recruitment_channel is not None and not code_in(record.recruitment_channel, _CHANNELS):
        fail("recruitment_channel", record.recruitment_channel)


@lru_cache(maxsize=4096)
def _other_values(recorded_means: tuple[str, ...], recorded_needs: tuple[str, ...]) -> dict[str, Cell]:
    """Datasource, means of control and needs: not quasi-identifiers, written exactly. An empty list is
    "not recorded" (-99), as CTDC codes its flag groups. (Shared between calls: never modify it.)"""
    means, needs = set(recorded_means), set(recorded_needs)
    out: dict[str, Cell] = {"Datasource": DATASOURCE}
    for kind, (column, _) in MEANS_COLUMNS.items():
        out[column] = int(kind in means) if means else MISSING_FLAG
    out[MEANS_NOT_SPECIFIED] = 0 if means else MISSING_FLAG
    out[MEANS_CONCATENATED] = (CONCAT_SEPARATOR.join(label for kind, (_, label) in MEANS_COLUMNS.items()
                                                     if kind in means) or MISSING)
    for kind, column in NEED_COLUMNS.items():
        out[column] = int(kind in needs) if needs else MISSING_FLAG
    return out


def _step_maps(hierarchy: Hierarchy, exact_values: Iterable[Values]) -> list[dict[Values, Values]]:
    """For each level l, value at l → value at l+1; fails if a level is not a generalisation of the one before."""
    steps: list[dict[Values, Values]] = [{} for _ in hierarchy.levels[1:]]
    for exact in exact_values:
        at = [level.apply(exact) for level in hierarchy.levels]
        if at[0] != exact:
            raise ValueError(f"hierarchy {hierarchy.name}: level 0 must be the exact value")
        for level, step in enumerate(steps):
            if step.setdefault(at[level], at[level + 1]) != at[level + 1]:
                raise ValueError(f"hierarchy {hierarchy.name}: level {hierarchy.levels[level + 1].name!r} "
                                 f"is not a generalisation of {hierarchy.levels[level].name!r} ({at[level]!r})")
    return steps


def _choose_node(qis: Sequence[Hierarchy], exact_counts: Counter[tuple[Values, ...]], records: int, k: int,
                 max_suppression_rate: float) -> tuple[tuple[int, ...], bool]:
    """The lattice node to publish at, and whether it is within the suppression budget.

    Nodes are visited layer by layer (sum of levels), each node's classes computed from a parent's (the same
    node with one QI one level lower). Class keys are integers, one digit per QI in a mixed radix, so moving
    a QI up a level adds a precomputed delta. A node losing more than the best node found within budget is
    skipped: its classes are not needed, since every node that could still win loses less, and so do its parents.
    """
    heights = [len(h.levels) - 1 for h in qis]
    codes: list[dict[Values, int]] = []  # per QI: every value at every level → its digit
    deltas: list[list[list[int]]] = []  # per QI, per level l: digit at l → change of the key when moving to l+1
    radix = 1
    radices = []
    for i, hierarchy in enumerate(qis):
        steps = _step_maps(hierarchy, {key[i] for key in exact_counts})
        code: dict[Values, int] = {}
        for value in [key[i] for key in exact_counts] + [v for step in steps for v in step.values()]:
            code.setdefault(value, len(code))
        codes.append(code)
        delta = []
        for step in steps:
            per_digit = [0] * len(code)
            for low, high in step.items():
                per_digit[code[low]] = (code[high] - code[low]) * radix
            delta.append(per_digit)
        deltas.append(delta)
        radices.append(radix)
        radix *= max(len(code), 1)
    exact_keys: dict[int, int] = {}
    for key, count in exact_counts.items():
        number = sum(codes[i][value] * radices[i] for i, value in enumerate(key))
        exact_keys[number] = exact_keys.get(number, 0) + count

    budget = max_suppression_rate * records
    best_within, best_any = None, None
    nodes = sorted(product(*(range(h + 1) for h in heights)), key=lambda node: (sum(node), node))
    previous: dict[tuple[int, ...], dict[int, int]] = {}  # the classes of the layer before, by node
    layer: dict[tuple[int, ...], dict[int, int]] = {}
    layer_total = 0
    for node in nodes:
        total = sum(node)
        if total != layer_total:
            previous, layer, layer_total = layer, {}, total
        loss = sum((Fraction(level, height) for level, height in zip(node, heights) if height), Fraction(0))
        if best_within is not None and loss > best_within[0]:
            continue
        if not total:
            classes = exact_keys
        else:
            i = max(j for j, level in enumerate(node) if level)
            parent = previous[node[:i] + (node[i] - 1,) + node[i + 1:]]
            delta, radix_i, size_i = deltas[i][node[i] - 1], radices[i], len(codes[i])
            classes = {}
            get = classes.get
            for key, count in parent.items():
                key += delta[(key // radix_i) % size_i]
                classes[key] = get(key, 0) + count
        layer[node] = classes
        suppressed = sum(count for count in classes.values() if count < k)
        if suppressed <= budget:
            rank = (loss, suppressed, total, node)
            best_within = min(best_within, rank) if best_within else rank
        rank = (suppressed, loss, total, node)
        best_any = min(best_any, rank) if best_any else rank
    if best_within is not None:
        return best_within[3], True
    return best_any[3], False


def _ranks(items: Iterable, cells: Callable[[object], list[Cell]]) -> dict:
    """Each item's place in a total order of its cells, whatever mix of numbers and text they hold."""
    def key(item: object) -> tuple:
        return tuple((0, v, "") if isinstance(v, int) else (1, 0, v) for v in cells(item))
    return {item: rank for rank, item in enumerate(sorted(items, key=key))}


def export(records: Iterable[VictimRecord], k: int = DEFAULT_K, max_suppression_rate: float = 0.05,
           quasi_identifiers: Sequence[str | Hierarchy] = DEFAULT_QIS) -> CtdcExport:
    """The records in CTDC's layout, k-anonymous over `quasi_identifiers`, with a report of what was
    generalised and suppressed. A quasi-identifier is a name in HIERARCHIES, or a Hierarchy of your own that
    replaces the one of the same name (same columns, other levels)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, not {k!r}")
    if not 0 <= max_suppression_rate <= 1:
        raise ValueError(f"max_suppression_rate must be within [0, 1], not {max_suppression_rate!r}")
    qis = [HIERARCHIES[q] if isinstance(q, str) else q for q in quasi_identifiers]
    if len({h.name for h in qis}) != len(qis):
        raise ValueError("a quasi-identifier is named twice")
    qi_names = {h.name for h in qis}
    hierarchies = qis + [h for h in HIERARCHIES.values() if h.name not in qi_names]
    columns_of = [c for h in hierarchies for c in h.columns]
    if sorted(columns_of) != sorted(c for h in HIERARCHIES.values() for c in h.columns):
        raise ValueError("the quasi-identifiers must cover each CTDC column of the hierarchies exactly once")

    kept: list[tuple[tuple[Values, ...], tuple[tuple[str, ...], tuple[str, ...]]]] = []
    for record in records:  # (exact values per hierarchy, the record's other columns)
        _check(record)
        kept.append((tuple(h.exact(record) for h in hierarchies),
                     (tuple(record.means_of_control), tuple(record.needs))))
    n = len(kept)
    exact_counts: Counter[tuple[Values, ...]] = Counter(exact[:len(qis)] for exact, _ in kept)
    node, within = _choose_node(qis, exact_counts, n, k, max_suppression_rate) if qis else ((), True)

    levels = [h.levels[level] for h, level in zip(qis, node)] + [h.levels[0] for h in hierarchies[len(qis):]]
    generalised = {exact: tuple(level.apply(values) for level, values in zip(levels, exact))
                   for exact in {exact for exact, _ in kept}}
    class_sizes = Counter(generalised[exact][:len(qis)] for exact, _ in kept)
    published = {key: size for key, size in class_sizes.items() if size >= k}

    # One row per distinct content, sorted by value (so the input's order never shows), then repeated.
    distinct = Counter((generalised[exact], other) for exact, other in kept
                       if generalised[exact][:len(qis)] in published)
    values_rank = _ranks({values for values, _ in distinct}, lambda values: [v for vs in values for v in vs])
    other_rank = _ranks({other for _, other in distinct}, lambda other: [*sorted(other[0]), "|", *sorted(other[1])])
    cells_of = {values: {c: v for h, vs in zip(hierarchies, values) for c, v in zip(h.columns, vs)}
                for values in values_rank}
    rows = []
    for (values, other), count in sorted(distinct.items(),
                                         key=lambda item: (values_rank[item[0][0]], other_rank[item[0][1]])):
        cells = cells_of[values] | _other_values(*other)
        row = {column: cells[column] for column in (*COLUMNS, *EXTENSION_COLUMNS)}
        rows.extend(dict(row) for _ in range(count))

    report = ExportReport(
        k=k, max_suppression_rate=max_suppression_rate, records_in=n, records_out=len(rows),
        records_suppressed=n - len(rows),
        generalisation=tuple(QiGeneralisation(h.name, level, h.levels[level].name, h.columns)
                             for h, level in zip(qis, node)),
        smallest_class_size=min(published.values(), default=None), equivalence_classes=len(published),
        within_suppression_budget=within,
    )
    return CtdcExport(columns=[*COLUMNS, *EXTENSION_COLUMNS], rows=rows, report=report,
                      quasi_identifier_columns=tuple(c for h in qis for c in h.columns))


def to_csv(export: CtdcExport) -> str:
    """The export as CSV: a header of the columns, then the rows. Every value is a code, so no cell can
    start a spreadsheet formula."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(export.columns)
    writer.writerows([row[column] for column in export.columns] for row in export.rows)
    return out.getvalue()
