"""A synthetic hospital store: materials used in clinical cases, about a million rows.

The demo's store, and the one the tours and the example dashboard read. Everything is
drawn from one seeded NumPy generator, so the same scale gives the same bytes of data on
every machine (it does not depend on DuckDB's hash or random functions, which may change
between versions). No row describes a real person: ages are bands, there are no names,
dates of birth or identifiers that mean anything outside this file.

    sites           4 hospitals of one regional group
    departments     specialties per site
    suppliers       who sells the materials
    materials       what is used: implants, devices, drugs, consumables (list price)
    cases           one clinical case each: procedure, dates, age band, urgency, outcome
    case_materials  what each case used and what it cost (most of the rows)
    monthly_costs   view: cases and material cost per site and month

The data has a story to find, as real data would:

- The seasons show. Emergencies rise in winter; planned (elective) surgery dips in the
  summer holidays, most in August, and around Christmas, and hardly happens at weekends.
- The sites differ. Osterfeld University Hospital takes the complex cases: longer in
  theatre, longer stays, pricier implant models (although it buys in bulk and gets the
  best prices for the same model). Westerby Community Hospital is small and quick, has no
  cardiology, ENT or neurosurgery, and transfers more patients on. Theatre time and length
  of stay follow the procedure, the urgency and the patient's age.
- Implants follow the procedure (a hip replacement uses a hip stem, a cataract a lens),
  sites have preferred suppliers, and prices rise every year.
- A handful of cases cost many times the rest.
- And one thing is wrong. Group implant spend by site, department and quarter: one
  department at one site spends about twice its usual in one quarter, with no more cases
  than usual. Which supplier, which material, and was it the quantity or the price?
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from .sales import build_atomically

SEED = 20261124
CASES_AT_SCALE_1 = 160_000
FIRST_DAY, DAYS = np.datetime64("2022-01-01"), 4 * 365 + 1  # 2022 to 2025

SITES = [
    (1, "St. Brigid's General", "Nordheim", 640),
    (2, "Osterfeld University Hospital", "Osterfeld", 1120),
    (3, "Westerby Community Hospital", "Westerby", 210),
    (4, "Suderburg Clinic", "Suderburg", 380),
]


@dataclass(frozen=True)
class SiteProfile:
    theatre: float  # theatre time relative to the group's typical
    stay: float  # length of stay, likewise
    implant_tier: tuple[float, float]  # Beta(a, b) over a material's models, cheapest first
    transfers: float  # how often patients are transferred on, relative
    case_mix: dict[str, float]  # specialties more (or less) common here than elsewhere


SITE_PROFILE = {
    1: SiteProfile(1.0, 1.0, (1.0, 1.0), 1.0, {}),
    2: SiteProfile(
        1.22,
        1.2,
        (2.4, 1.0),
        0.5,
        {"Neurosurgery": 1.8, "Cardiology": 1.3, "Orthopaedics": 1.25, "Obstetrics": 0.7},
    ),
    3: SiteProfile(
        0.82, 0.8, (1.0, 2.2), 2.2, {"General surgery": 1.4, "Obstetrics": 1.5, "Orthopaedics": 0.8}
    ),
    4: SiteProfile(0.93, 0.88, (1.0, 1.3), 1.3, {"Ophthalmology": 1.8, "Orthopaedics": 1.15}),
}
SMALL_SITE_LACKS = ("Neurosurgery", "Cardiology", "ENT")  # sites under 300 beds
ONLY_AT = {"cochlear implant": 2}  # procedures done at one specialist centre

# specialty -> (share of cases, age bands' probabilities, share of women)
SPECIALTIES: dict[str, tuple[float, tuple[float, ...], float]] = {
    "Orthopaedics": (0.19, (0.05, 0.15, 0.22, 0.30, 0.28), 0.58),
    "Cardiology": (0.16, (0.01, 0.07, 0.25, 0.37, 0.30), 0.38),
    "General surgery": (0.2, (0.08, 0.22, 0.28, 0.25, 0.17), 0.5),
    "Obstetrics": (0.12, (0.01, 0.80, 0.19, 0.0, 0.0), 1.0),
    "Ophthalmology": (0.1, (0.02, 0.05, 0.15, 0.38, 0.40), 0.56),
    "Urology": (0.09, (0.01, 0.10, 0.25, 0.35, 0.29), 0.15),
    "ENT": (0.07, (0.35, 0.30, 0.20, 0.10, 0.05), 0.5),
    "Neurosurgery": (0.07, (0.05, 0.20, 0.35, 0.28, 0.12), 0.48),
}

# specialty -> procedures: (name, share within the specialty, typical theatre minutes,
# typical stay in days, P(elective, urgent, emergency), the kit it always uses as
# (material, quantity, extra quantity on average))
Kit = tuple[tuple[str, int, float], ...]
PROCEDURES: dict[str, list[tuple[str, float, float, float, tuple[float, float, float], Kit]]] = {
    "Orthopaedics": [
        ("hip replacement", 0.38, 105, 4.5, (0.85, 0.10, 0.05), (("hip stem", 1, 0),)),
        ("knee replacement", 0.26, 115, 4.0, (0.95, 0.05, 0.0), (("knee component", 1, 0),)),
        (
            "fracture fixation",
            0.24,
            95,
            5.0,
            (0.1, 0.4, 0.5),
            (("plate", 1, 0), ("bone screw", 2, 2)),
        ),
        ("arthroscopy", 0.12, 45, 0.5, (0.9, 0.1, 0.0), ()),
    ],
    "Cardiology": [
        ("coronary stent", 0.35, 70, 1.5, (0.45, 0.35, 0.2), (("stent", 1, 0.4),)),
        ("pacemaker implant", 0.18, 75, 2.0, (0.7, 0.25, 0.05), (("pacemaker", 1, 0),)),
        ("angiography", 0.35, 40, 0.8, (0.5, 0.3, 0.2), ()),
        ("ablation", 0.12, 160, 1.5, (0.9, 0.1, 0.0), (("ablation catheter", 1, 0),)),
    ],
    "General surgery": [
        ("appendectomy", 0.27, 60, 2.5, (0.05, 0.25, 0.7), ()),
        ("cholecystectomy", 0.3, 85, 2.0, (0.75, 0.15, 0.1), (("clip applier", 1, 0),)),
        ("hernia repair", 0.3, 65, 1.0, (0.9, 0.07, 0.03), ()),
        ("bowel resection", 0.13, 190, 8.0, (0.5, 0.2, 0.3), (("stapler cartridge", 2, 1),)),
    ],
    "Obstetrics": [
        ("caesarean section", 0.45, 50, 3.5, (0.35, 0.25, 0.4), ()),
        ("assisted delivery", 0.55, 35, 2.0, (0.0, 0.4, 0.6), ()),
    ],
    "Ophthalmology": [
        ("cataract surgery", 0.82, 22, 0.0, (0.98, 0.02, 0.0), (("lens", 1, 0),)),
        ("vitrectomy", 0.18, 75, 0.5, (0.6, 0.3, 0.1), ()),
    ],
    "Urology": [
        ("TURP", 0.4, 60, 2.5, (0.9, 0.08, 0.02), ()),
        ("ureteroscopy", 0.45, 50, 1.0, (0.55, 0.3, 0.15), ()),
        ("nephrectomy", 0.15, 180, 5.5, (0.85, 0.1, 0.05), ()),
    ],
    "ENT": [
        ("tonsillectomy", 0.55, 40, 0.8, (0.95, 0.04, 0.01), ()),
        ("septoplasty", 0.4, 60, 0.5, (1.0, 0.0, 0.0), ()),
        ("cochlear implant", 0.05, 150, 1.5, (1.0, 0.0, 0.0), (("cochlear implant", 1, 0),)),
    ],
    "Neurosurgery": [
        (
            "spinal fusion",
            0.55,
            220,
            5.0,
            (0.75, 0.15, 0.1),
            (("bone screw", 4, 1), ("plate", 1, 0)),
        ),
        ("craniotomy", 0.45, 250, 8.0, (0.35, 0.25, 0.4), ()),
    ],
}

SUPPLIERS = [
    "Acme Medical",
    "Baltic Surgical",
    "Carewell",
    "Danube Devices",
    "Elbe Implants",
    "Fjord Healthcare",
    "Gallen Pharma",
    "Helix Ortho",
    "Iberia Med",
    "Jura Instruments",
    "Kestrel Labs",
    "Lumen Optics",
    "Medicor",
    "Nordic Sterile",
    "Orion Cardio",
    "Pannonia Supplies",
    "Quercus Textiles",
    "Rhine Pharma",
    "Saale Sutures",
    "Tatra Devices",
]

# category -> (unit, spread of the log cost between models, suppliers, {item: median
# unit cost in EUR}); an item's own suppliers, if it has them, are in ITEM_SUPPLIERS.
CATEGORIES: dict[str, tuple[str, float, list[str], dict[str, float]]] = {
    "consumable": (
        "box",
        0.6,
        ["Nordic Sterile", "Quercus Textiles", "Carewell", "Pannonia Supplies", "Acme Medical"],
        dict.fromkeys(
            ["gloves", "drape", "gown", "swab", "syringe", "cannula", "dressing", "catheter"], 18.0
        ),
    ),
    "suture": (
        "pack",
        0.5,
        ["Saale Sutures", "Baltic Surgical", "Acme Medical"],
        dict.fromkeys(["absorbable suture", "non-absorbable suture", "skin stapler"], 42.0),
    ),
    "drug": (
        "dose",
        0.9,
        ["Gallen Pharma", "Rhine Pharma", "Kestrel Labs", "Iberia Med"],
        dict.fromkeys(["anaesthetic", "antibiotic", "analgesic", "anticoagulant", "saline"], 9.0),
    ),
    "instrument": (
        "piece",
        0.7,
        ["Jura Instruments", "Baltic Surgical", "Acme Medical"],
        dict.fromkeys(["scalpel", "trocar", "clip applier", "suction tip"], 65.0),
    ),
    "implant": (
        "piece",
        0.4,
        ["Helix Ortho", "Elbe Implants", "Danube Devices"],
        {
            "hip stem": 2900.0,
            "knee component": 2300.0,
            "bone screw": 90.0,
            "plate": 600.0,
            "stent": 850.0,
            "pacemaker": 4200.0,
            "lens": 160.0,
            "cochlear implant": 16000.0,
        },
    ),
    "device": (
        "piece",
        0.7,
        ["Tatra Devices", "Medicor", "Fjord Healthcare", "Iberia Med", "Danube Devices"],
        dict.fromkeys(["infusion set", "ablation catheter", "stapler cartridge", "drain"], 220.0),
    ),
}
ITEM_SUPPLIERS = {
    "stent": ["Orion Cardio", "Medicor", "Danube Devices"],
    "pacemaker": ["Orion Cardio", "Medicor"],
    "lens": ["Lumen Optics", "Kestrel Labs"],
    "cochlear implant": ["Medicor", "Tatra Devices"],
}
VARIANTS_PER_BASE = 34  # sizes/brands (models) per item: ~1,100 materials at any scale
# (site, item) -> (supplier, share of the site's uses of the item): framework contracts.
CONTRACTS = {
    (2, "hip stem"): ("Helix Ortho", 0.92),
    (2, "stent"): ("Orion Cardio", 0.75),
    (1, "knee component"): ("Elbe Implants", 0.7),
    (4, "lens"): ("Lumen Optics", 0.8),
}
# Everyday materials per case (besides its kit), by category, and the average count.
EVERYDAY = {"consumable": 0.44, "suture": 0.16, "drug": 0.27, "instrument": 0.09, "device": 0.04}
EVERYDAY_ITEMS = 3.6  # at the typical theatre time; longer operations use more

# What a site pays relative to list price (the university hospital buys in bulk, the
# community hospital does not), and yearly price rises.
SITE_PRICE = {1: 1.0, 2: 0.93, 3: 1.14, 4: 1.04}
YEARLY_RISE = {2022: 1.0, 2023: 1.04, 2024: 1.11, 2025: 1.15}

# The anomaly: what one supplier charged one site for one item in one quarter, relative to
# its contract price (the quantities used stay as always).
ANOMALY_SITE, ANOMALY_ITEM, ANOMALY_SUPPLIER = 2, "hip stem", "Helix Ortho"
ANOMALY_FROM, ANOMALY_UNTIL = np.datetime64("2024-07-01"), np.datetime64("2024-10-01")
ANOMALY_PRICE = 3.0

AGE_BANDS = ["0-17", "18-39", "40-59", "60-74", "75+"]
URGENCY = ["elective", "urgent", "emergency"]
OUTCOMES = ["home", "transfer", "readmitted within 30 days", "deceased"]

# urgency -> admissions per month (Jan..Dec) and per weekday (Mon..Sun), relative.
SEASON = {
    "elective": (
        (1.0, 1.04, 1.06, 1.0, 1.03, 0.97, 0.82, 0.52, 1.02, 1.07, 1.07, 0.86),
        (1.0, 1.0, 1.0, 1.0, 0.95, 0.1, 0.04),
    ),
    "urgent": (
        (1.12, 1.1, 1.03, 0.97, 0.95, 0.93, 0.92, 0.9, 0.96, 1.0, 1.05, 1.1),
        (1.0, 1.0, 1.0, 1.0, 1.0, 0.75, 0.65),
    ),
    "emergency": (
        (1.4, 1.3, 1.12, 0.97, 0.9, 0.86, 0.86, 0.88, 0.92, 1.0, 1.12, 1.3),
        (1.0, 0.98, 0.98, 0.98, 1.02, 1.08, 1.06),
    ),
}
YEARLY_GROWTH = 0.03  # more cases every year
URGENCY_THEATRE = np.array([1.0, 1.08, 1.2])
URGENCY_STAY = np.array([1.0, 1.5, 2.0])
AGE_STAY = np.array([0.75, 0.85, 1.0, 1.2, 1.5])
AGE_THEATRE = np.array([0.9, 0.97, 1.0, 1.03, 1.07])
OUTLIERS_AT_SCALE_1 = 40  # complicated cases costing many times the rest (at least 3)

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class HospitalStoreInfo:
    path: str
    rows: dict[str, int]

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def _quiet(table: str, rows: int) -> None:
    pass


def _day_weights(urgency: str) -> np.ndarray:
    """How likely a case of this urgency is admitted on each day of the four years."""
    days = FIRST_DAY + np.arange(DAYS)
    month = days.astype("datetime64[M]").astype(int) % 12
    year = days.astype("datetime64[Y]").astype(int) + 1970
    weekday = (days.astype(int) + 3) % 7  # 1970-01-01 was a Thursday
    by_month, by_weekday = (np.array(f) for f in SEASON[urgency])
    weights: np.ndarray = (
        by_month[month] * by_weekday[weekday] * (1 + YEARLY_GROWTH * (year - 2022))
    )
    if urgency == "elective":  # theatres plan little between Christmas and New Year
        day_of_year = (days - days.astype("datetime64[Y]")).astype(int)
        weights[(day_of_year >= 355) | (day_of_year < 2)] *= 0.25
    share: np.ndarray = weights / weights.sum()
    return share


COMMENTS = (
    ("TABLE cases", "Cases"),
    ("COLUMN cases.procedure", "Procedure"),
    ("COLUMN cases.admitted", "Admitted"),
    ("COLUMN cases.discharged", "Discharged"),
    ("COLUMN cases.age_band", "Age band"),
    ("COLUMN cases.urgency", "Urgency"),
    ("COLUMN cases.outcome", "Outcome"),
    ("COLUMN cases.theatre_minutes", "Theatre minutes"),
    ("TABLE case_materials", "Materials used per case"),
    ("COLUMN case_materials.cost", "Cost [EUR]"),
    ("TABLE materials", "Materials"),
    ("COLUMN materials.unit_cost", "Unit cost [EUR]"),
    ("TABLE suppliers", "Suppliers"),
    ("TABLE sites", "Sites"),
    ("TABLE departments", "Departments"),
    ("VIEW monthly_costs", "Monthly costs per site"),
    ("COLUMN monthly_costs.material_cost", "Material cost [EUR]"),
)


def build_hospital_store(
    path: str | os.PathLike[str], scale: float = 1.0, progress: Progress | None = None
) -> HospitalStoreInfo:
    """Create (or replace) the hospital store at ``path``.

    ``scale`` multiplies the number of cases (1.0: 160,000 cases, ~1,000,000 rows in all);
    ``progress(table, rows)`` is called as each table is written.
    """
    if not 0 < scale <= 10:
        raise ValueError(f"scale must be in (0, 10], got {scale}")
    report = progress or _quiet
    rng = np.random.default_rng(SEED)
    rows: dict[str, int] = {}

    def fill(con: duckdb.DuckDBPyConnection) -> None:
        def write(name: str, table: pa.Table, ddl: str) -> None:
            con.register("incoming", table)
            con.execute(f"CREATE TABLE {name} AS SELECT {ddl} FROM incoming")
            con.unregister("incoming")
            rows[name] = table.num_rows
            report(name, table.num_rows)

        write(
            "sites",
            pa.table(
                {
                    "site_id": [s[0] for s in SITES],
                    "name": [s[1] for s in SITES],
                    "city": [s[2] for s in SITES],
                    "beds": [s[3] for s in SITES],
                }
            ),
            "site_id::SMALLINT AS site_id, name, city, beds::INTEGER AS beds",
        )

        # Every site has most specialties; the small one fewer. A department's share of
        # cases: its specialty's share, times the site's size and its case mix.
        specialties = list(SPECIALTIES)
        dept_site, dept_spec, dept_weight = [], [], []
        for site_id, _name, _city, beds in SITES:
            for s, specialty in enumerate(specialties):
                if beds < 300 and specialty in SMALL_SITE_LACKS:
                    continue
                dept_site.append(site_id)
                dept_spec.append(s)
                mix = SITE_PROFILE[site_id].case_mix.get(specialty, 1.0)
                dept_weight.append(SPECIALTIES[specialty][0] * beds * mix)
        dept_ids = np.arange(1, len(dept_site) + 1)
        write(
            "departments",
            pa.table(
                {
                    "dept_id": dept_ids,
                    "site_id": dept_site,
                    "specialty": [specialties[s] for s in dept_spec],
                }
            ),
            "dept_id::SMALLINT AS dept_id, site_id::SMALLINT AS site_id, specialty",
        )

        write(
            "suppliers",
            pa.table(
                {
                    "supplier_id": np.arange(1, len(SUPPLIERS) + 1),
                    "name": SUPPLIERS,
                    "country": rng.choice(["DE", "AT", "NL", "DK", "PL", "FR"], len(SUPPLIERS)),
                }
            ),
            "supplier_id::SMALLINT AS supplier_id, name, country",
        )

        # Materials: models of each item, with a list price and a supplier (the item's
        # suppliers in turn). Models of an item are kept cheapest first.
        m_name: list[str] = []
        m_cat: list[str] = []
        m_unit: list[str] = []
        m_cost: list[float] = []
        m_supplier: list[int] = []
        item_ids: dict[str, np.ndarray] = {}
        for category, (unit, spread, suppliers, items) in CATEGORIES.items():
            for item, median in items.items():
                costs = np.sort(median * np.exp(rng.normal(0, spread, VARIANTS_PER_BASE)))
                sold_by = ITEM_SUPPLIERS.get(item, suppliers)
                item_ids[item] = np.arange(len(m_name) + 1, len(m_name) + 1 + VARIANTS_PER_BASE)
                for v in range(VARIANTS_PER_BASE):
                    m_name.append(f"{item} {chr(65 + v % 26)}{v // 26 + 1}")
                    m_cat.append(category)
                    m_unit.append(unit)
                    m_cost.append(round(float(costs[v]), 2))
                    m_supplier.append(SUPPLIERS.index(sold_by[v % len(sold_by)]) + 1)
        material_ids = np.arange(1, len(m_name) + 1)
        list_price = np.array(m_cost)
        supplier_of = np.array(m_supplier)
        write(
            "materials",
            pa.table(
                {
                    "material_id": material_ids,
                    "name": m_name,
                    "category": m_cat,
                    "unit": m_unit,
                    "unit_cost": m_cost,
                    "supplier_id": m_supplier,
                }
            ),
            "material_id::INTEGER AS material_id, name, category, unit, "
            "unit_cost::DECIMAL(10, 2) AS unit_cost, supplier_id::SMALLINT AS supplier_id",
        )

        # Cases: a department (weighted as above), a procedure of its specialty, an
        # urgency that depends on the procedure, an admission day that depends on the
        # urgency (the seasons), and a patient described only by band.
        n = max(1, round(CASES_AT_SCALE_1 * scale))
        weights = np.array(dept_weight)
        dept_idx = rng.choice(len(dept_site), n, p=weights / weights.sum())
        site_of = np.array(dept_site)[dept_idx]
        spec_of = np.array(dept_spec)[dept_idx]

        flat = [(s, *p) for s, sp in enumerate(specialties) for p in PROCEDURES[sp]]
        p_spec = np.array([f[0] for f in flat])
        p_name = np.array([f[1] for f in flat])
        p_minutes = np.array([f[3] for f in flat], dtype=float)
        p_stay = np.array([f[4] for f in flat], dtype=float)
        p_urgency = np.cumsum(np.array([f[5] for f in flat]), axis=1)
        proc = np.empty(n, dtype=np.int64)
        age = np.empty(n, dtype=np.int64)
        women = np.empty(n)
        p_share = np.array([f[2] for f in flat])
        p_site = np.array([ONLY_AT.get(f[1], 0) for f in flat])  # 0: at every site
        for d, (site_id, s) in enumerate(zip(dept_site, dept_spec, strict=True)):
            mask = dept_idx == d
            ids = np.flatnonzero((p_spec == s) & ((p_site == 0) | (p_site == site_id)))
            share = p_share[ids]
            proc[mask] = rng.choice(ids, int(mask.sum()), p=share / share.sum())
        for s, specialty in enumerate(specialties):
            mask = spec_of == s
            _share, ages, female = SPECIALTIES[specialty]
            age[mask] = rng.choice(len(AGE_BANDS), int(mask.sum()), p=np.array(ages) / sum(ages))
            women[mask] = female
        urgency = (rng.random(n)[:, None] >= p_urgency[proc][:, :2]).sum(axis=1)
        day = np.empty(n, dtype=np.int64)
        for u, name in enumerate(URGENCY):
            mask = urgency == u
            day[mask] = rng.choice(DAYS, int(mask.sum()), p=_day_weights(name))
        admitted = FIRST_DAY + day.astype("timedelta64[D]")
        sex = np.where(rng.random(n) < women, "F", "M")

        profile = [SITE_PROFILE[s[0]] for s in SITES]
        by_site = np.zeros(max(SITE_PROFILE) + 1)
        site_theatre, site_stay, site_transfer = by_site.copy(), by_site.copy(), by_site.copy()
        for (site_id, *_), prof in zip(SITES, profile, strict=True):
            site_theatre[site_id], site_stay[site_id] = prof.theatre, prof.stay
            site_transfer[site_id] = prof.transfers
        theatre = (
            p_minutes[proc]
            * site_theatre[site_of]
            * URGENCY_THEATRE[urgency]
            * AGE_THEATRE[age]
            * np.exp(rng.normal(0, 0.22, n))
        )
        stay_days = rng.poisson(
            p_stay[proc] * site_stay[site_of] * URGENCY_STAY[urgency] * AGE_STAY[age]
        )

        # Outcomes: worse for emergencies and the old; the community hospital transfers on.
        p_dead = np.array([0.001, 0.008, 0.03])[urgency] * np.array([0.2, 0.3, 0.7, 1.3, 2.6])[age]
        p_readmit = np.array([0.045, 0.07, 0.09])[urgency]
        p_transfer = np.array([0.04, 0.08, 0.12])[urgency] * site_transfer[site_of]
        draw = rng.random(n)
        outcome = np.select(
            [draw < p_dead, draw < p_dead + p_readmit, draw < p_dead + p_readmit + p_transfer],
            [3, 2, 1],
            0,
        )

        # A handful of complicated cases: long in theatre, weeks on the ward, and a bill
        # of devices and drugs many times the usual (their rows are added below).
        outliers = rng.choice(n, max(3, round(OUTLIERS_AT_SCALE_1 * scale)), replace=False)
        theatre[outliers] *= rng.uniform(2.2, 3.2, len(outliers))
        stay_days[outliers] += rng.integers(21, 70, len(outliers))
        outcome[outliers] = rng.choice([0, 1, 3], len(outliers), p=[0.5, 0.3, 0.2])
        theatre = np.clip(theatre, 10, 600).round()

        case_ids = np.arange(1, n + 1)
        write(
            "cases",
            pa.table(
                {
                    "case_id": case_ids,
                    "dept_id": dept_ids[dept_idx],
                    "site_id": site_of,
                    "procedure": p_name[proc],
                    "admitted": admitted,
                    "discharged": admitted + stay_days.astype("timedelta64[D]"),
                    "age_band": np.array(AGE_BANDS)[age],
                    "sex": sex,
                    "urgency": np.array(URGENCY)[urgency],
                    "outcome": np.array(OUTCOMES)[outcome],
                    "theatre_minutes": theatre,
                }
            ),
            "case_id::INTEGER AS case_id, dept_id::SMALLINT AS dept_id, "
            "site_id::SMALLINT AS site_id, procedure, admitted::DATE AS admitted, "
            "discharged::DATE AS discharged, age_band, sex, urgency, outcome, "
            "theatre_minutes::SMALLINT AS theatre_minutes",
        )

        # What each case used: everyday consumables, sutures, drugs, instruments (more
        # for longer operations), and the kit of its procedure.
        everyday = 1 + rng.poisson(EVERYDAY_ITEMS * np.sqrt(theatre / 90))
        owners = [np.repeat(np.arange(n), everyday)]
        m = len(owners[0])
        picks = rng.choice(len(EVERYDAY), m, p=list(EVERYDAY.values()))
        everyday_material = np.empty(m, dtype=np.int64)
        category_arr = np.array(m_cat)
        for c, category in enumerate(EVERYDAY):
            mask = picks == c
            ids = material_ids[category_arr == category]
            everyday_material[mask] = ids[rng.integers(0, len(ids), int(mask.sum()))]
        materials = [everyday_material]
        quantities = [np.where(picks == list(EVERYDAY).index("device"), 1, 1 + rng.poisson(1.5, m))]

        # Kits: which model a site uses depends on its tier (the university hospital
        # picks pricier ones) and its contracts (a preferred supplier).
        tier = np.linspace(0.5, VARIANTS_PER_BASE - 0.5, VARIANTS_PER_BASE) / VARIANTS_PER_BASE
        for p, (_s, _name, _share, _min, _stay, _urg, kit) in enumerate(flat):
            for item, base_quantity, extra in kit:
                ids = item_ids[item]
                for site_id, _sname, _city, _beds in SITES:
                    who = np.flatnonzero((proc == p) & (site_of == site_id))
                    if not len(who):
                        continue
                    a, b = SITE_PROFILE[site_id].implant_tier
                    w = tier ** (a - 1) * (1 - tier) ** (b - 1)
                    w /= w.sum()
                    if (site_id, item) in CONTRACTS:
                        supplier, contract_share = CONTRACTS[(site_id, item)]
                        theirs = supplier_of[ids - 1] == SUPPLIERS.index(supplier) + 1
                        w = np.where(
                            theirs,
                            contract_share * w / w[theirs].sum(),
                            (1 - contract_share) * w / w[~theirs].sum(),
                        )
                    owners.append(who)
                    materials.append(rng.choice(ids, len(who), p=w))
                    quantity_of = np.full(len(who), base_quantity)
                    if extra:
                        quantity_of += rng.poisson(extra, len(who))
                    quantities.append(quantity_of)

        # The complicated cases' extra bill: the dearest devices and drugs, in bulk.
        dearest = {
            c: material_ids[category_arr == c][np.argsort(-list_price[category_arr == c])[:8]]
            for c in ("device", "drug")
        }
        for category, low, high in (("device", 15, 40), ("device", 10, 30), ("drug", 80, 250)):
            owners.append(outliers)
            materials.append(rng.choice(dearest[category], len(outliers)))
            quantities.append(rng.integers(low, high, len(outliers)))

        owner = np.concatenate(owners)
        order = np.argsort(owner, kind="stable")  # each case's rows together
        owner = owner[order]
        material = np.concatenate(materials)[order]
        quantity = np.concatenate(quantities)[order]

        # What was paid: list price times the site's terms and the year's rise, and in one
        # quarter, for one site, one supplier's invoices for one item.
        year = admitted.astype("datetime64[Y]").astype(int) + 1970
        rise = np.array([YEARLY_RISE[y] for y in range(2022, 2026)])
        site_price = np.zeros(max(SITE_PRICE) + 1)
        for site_id, factor in SITE_PRICE.items():
            site_price[site_id] = factor
        price = site_price[site_of] * rise[year - 2022]
        unit_cost = list_price[material - 1] * price[owner]
        anomaly = (
            (site_of[owner] == ANOMALY_SITE)
            & np.isin(material, item_ids[ANOMALY_ITEM])
            & (supplier_of[material - 1] == SUPPLIERS.index(ANOMALY_SUPPLIER) + 1)
            & (admitted[owner] >= ANOMALY_FROM)
            & (admitted[owner] < ANOMALY_UNTIL)
        )
        unit_cost[anomaly] *= ANOMALY_PRICE
        write(
            "case_materials",
            pa.table(
                {
                    "case_id": case_ids[owner],
                    "material_id": material,
                    "quantity": quantity,
                    "cost": np.round(unit_cost * quantity, 2),
                }
            ),
            "case_id::INTEGER AS case_id, material_id::INTEGER AS material_id, "
            "quantity::SMALLINT AS quantity, cost::DECIMAL(12, 2) AS cost",
        )
        con.execute(
            """
            CREATE VIEW monthly_costs AS
            SELECT s.name AS site, date_trunc('month', c.admitted)::DATE AS month,
                   count(DISTINCT c.case_id) AS cases, sum(cm.cost) AS material_cost
            FROM cases c
            JOIN sites s USING (site_id)
            JOIN case_materials cm USING (case_id)
            GROUP BY ALL
            """
        )
        # Words a finance reader knows, shown by dashboards in place of column names,
        # and the currency amounts are in.
        for target, words in COMMENTS:
            con.execute(f"COMMENT ON {target} IS '{words}'")

    target = build_atomically(path, fill)
    return HospitalStoreInfo(target, rows)
