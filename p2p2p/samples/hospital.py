"""A synthetic hospital store: materials used in clinical cases, about a million rows.

The demo's store, and the one the tours and the example dashboard read. Everything is
drawn from one seeded NumPy generator, so the same scale gives the same bytes of data on
every machine (it does not depend on DuckDB's hash or random functions, which may change
between versions). No row describes a real person: ages are bands, there are no names,
dates of birth or identifiers that mean anything outside this file.

    sites           4 hospitals of one regional group
    departments     specialties per site
    suppliers       who sells the materials
    materials       what is used: implants, devices, drugs, consumables (unit cost)
    cases           one clinical case each: procedure, dates, age band, urgency, outcome
    case_materials  what each case used and what it cost (most of the rows)
    monthly_costs   view: cases and material cost per site and month
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

SITES = [
    (1, "St. Brigid's General", "Nordheim", 640),
    (2, "Osterfeld University Hospital", "Osterfeld", 1120),
    (3, "Westerby Community Hospital", "Westerby", 210),
    (4, "Suderburg Clinic", "Suderburg", 380),
]

# specialty -> (procedures, share of cases, typical length of stay in days, implant-heavy)
SPECIALTIES: dict[str, tuple[list[str], float, float, bool]] = {
    "Orthopaedics": (
        ["hip replacement", "knee replacement", "fracture fixation", "arthroscopy"],
        0.19,
        4.0,
        True,
    ),
    "Cardiology": (
        ["coronary stent", "pacemaker implant", "angiography", "ablation"],
        0.16,
        3.0,
        True,
    ),
    "General surgery": (
        ["appendectomy", "cholecystectomy", "hernia repair", "bowel resection"],
        0.2,
        3.5,
        False,
    ),
    "Obstetrics": (["caesarean section", "assisted delivery"], 0.12, 3.0, False),
    "Ophthalmology": (["cataract surgery", "vitrectomy"], 0.1, 0.3, True),
    "Urology": (["TURP", "ureteroscopy", "nephrectomy"], 0.09, 2.5, False),
    "ENT": (["tonsillectomy", "septoplasty", "cochlear implant"], 0.07, 1.0, True),
    "Neurosurgery": (["spinal fusion", "craniotomy"], 0.07, 6.0, True),
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

# category -> (item bases, unit, median unit cost in EUR, spread of the log cost)
CATEGORIES: dict[str, tuple[list[str], str, float, float]] = {
    "consumable": (
        ["gloves", "drape", "gown", "swab", "syringe", "cannula", "dressing", "catheter"],
        "box",
        18.0,
        0.6,
    ),
    "suture": (["absorbable suture", "non-absorbable suture", "skin stapler"], "pack", 42.0, 0.5),
    "drug": (
        ["anaesthetic", "antibiotic", "analgesic", "anticoagulant", "saline"],
        "dose",
        9.0,
        0.9,
    ),
    "instrument": (["scalpel", "trocar", "clip applier", "suction tip"], "piece", 65.0, 0.7),
    "implant": (
        ["hip stem", "knee component", "bone screw", "plate", "stent", "pacemaker", "lens"],
        "piece",
        1400.0,
        0.8,
    ),
    "device": (
        ["infusion set", "ablation catheter", "stapler cartridge", "drain"],
        "piece",
        220.0,
        0.7,
    ),
}
VARIANTS_PER_BASE = 34  # sizes/brands per item: ~1,060 materials at any scale

# What a site pays relative to list price (the university hospital buys in bulk, the
# community hospital does not), and yearly price rises: structure worth finding.
SITE_PRICE = {1: 1.0, 2: 0.93, 3: 1.14, 4: 1.04}
YEARLY_RISE = {2022: 1.0, 2023: 1.04, 2024: 1.11, 2025: 1.15}

AGE_BANDS = ["0-17", "18-39", "40-59", "60-74", "75+"]
URGENCY = ["elective", "urgent", "emergency"]
OUTCOMES = ["home", "transfer", "readmitted within 30 days", "deceased"]

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


def build_hospital_store(
    path: str | os.PathLike[str], scale: float = 1.0, progress: Progress | None = None
) -> HospitalStoreInfo:
    """Create (or replace) the hospital store at ``path``.

    ``scale`` multiplies the number of cases (1.0: ~160,000 cases, ~1,000,000 rows in all);
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

        # Every site has most specialties; the small one fewer.
        # A department's share of cases: its specialty's share times the site's size.
        dept_site, dept_name, dept_weight = [], [], []
        for site_id, _name, _city, beds in SITES:
            for specialty in SPECIALTIES:
                if beds < 300 and specialty in ("Neurosurgery", "Cardiology", "ENT"):
                    continue
                dept_site.append(site_id)
                dept_name.append(specialty)
                dept_weight.append(SPECIALTIES[specialty][1] * beds)
        departments = pa.table(
            {
                "dept_id": np.arange(1, len(dept_site) + 1),
                "site_id": dept_site,
                "specialty": dept_name,
            }
        )
        write(
            "departments",
            departments,
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

        m_name, m_cat, m_unit, m_cost, m_supplier = [], [], [], [], []
        for category, (bases, unit, median, spread) in CATEGORIES.items():
            for base in bases:
                costs = median * np.exp(rng.normal(0, spread, VARIANTS_PER_BASE))
                for v in range(VARIANTS_PER_BASE):
                    m_name.append(f"{base} {chr(65 + v % 26)}{v // 26 + 1}")
                    m_cat.append(category)
                    m_unit.append(unit)
                    m_cost.append(round(float(costs[v]), 2))
                    m_supplier.append(int(rng.integers(1, len(SUPPLIERS) + 1)))
        material_ids = np.arange(1, len(m_name) + 1)
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

        # Cases: a department (weighted by its specialty and the site's size), then a
        # procedure, dates, and a patient described only by band.
        n = max(1, round(CASES_AT_SCALE_1 * scale))
        specialty_of = np.array(dept_name)
        weights = np.array(dept_weight)
        dept_idx = rng.choice(len(dept_name), n, p=weights / weights.sum())
        procedures = np.empty(n, dtype=object)
        stay_mean = np.empty(n)
        implant_heavy = np.empty(n, dtype=bool)
        for specialty, (procs, _share, stay, implants) in SPECIALTIES.items():
            mask = specialty_of[dept_idx] == specialty
            procedures[mask] = rng.choice(procs, int(mask.sum()))
            stay_mean[mask] = stay
            implant_heavy[mask] = implants
        start = np.datetime64("2022-01-01")
        admitted = start + rng.integers(0, 4 * 365 + 1, n).astype("timedelta64[D]")
        stay_days = rng.poisson(stay_mean)
        urgency = rng.choice(URGENCY, n, p=[0.62, 0.26, 0.12])
        age_band = rng.choice(AGE_BANDS, n, p=[0.08, 0.2, 0.27, 0.27, 0.18])
        outcome = rng.choice(OUTCOMES, n, p=[0.86, 0.07, 0.062, 0.008])
        theatre = np.clip(rng.normal(95, 40, n), 15, 480).round()
        case_ids = np.arange(1, n + 1)
        site_of = np.array(dept_site)[dept_idx]
        cases = pa.table(
            {
                "case_id": case_ids,
                "dept_id": departments["dept_id"].to_numpy()[dept_idx],
                "site_id": site_of,
                "procedure": procedures.astype(str),
                "admitted": admitted,
                "discharged": admitted + stay_days.astype("timedelta64[D]"),
                "age_band": age_band,
                "sex": rng.choice(["F", "M"], n),
                "urgency": urgency,
                "outcome": outcome,
                "theatre_minutes": theatre,
            }
        )
        write(
            "cases",
            cases,
            "case_id::INTEGER AS case_id, dept_id::SMALLINT AS dept_id, "
            "site_id::SMALLINT AS site_id, procedure, admitted::DATE AS admitted, "
            "discharged::DATE AS discharged, age_band, sex, urgency, outcome, "
            "theatre_minutes::SMALLINT AS theatre_minutes",
        )

        # What each case used: a few consumables, sutures and drugs for every case, and an
        # implant or device for the implant-heavy specialties.
        per_case = 1 + rng.poisson(4.25, n)
        owner = np.repeat(np.arange(n), per_case)
        m = len(owner)
        category_arr = np.array(m_cat)
        by_category = {c: material_ids[category_arr == c] for c in CATEGORIES}
        picks = rng.choice(
            ["consumable", "suture", "drug", "instrument", "implant", "device"],
            m,
            p=[0.42, 0.16, 0.26, 0.1, 0.03, 0.03],
        )
        # Implant-heavy cases turn a share of their picks into implants/devices.
        boost = implant_heavy[owner] & (rng.random(m) < 0.12)
        picks[boost] = "implant"
        material = np.empty(m, dtype=np.int64)
        for category, ids in by_category.items():
            mask = picks == category
            material[mask] = rng.choice(ids, int(mask.sum()))
        quantity = np.where(np.isin(picks, ["implant", "device"]), 1, 1 + rng.poisson(1.5, m))
        year_of = admitted.astype("datetime64[Y]").astype(int) + 1970
        price = np.vectorize(SITE_PRICE.get)(site_of) * np.vectorize(YEARLY_RISE.get)(year_of)
        unit_cost = np.array(m_cost)[material - 1] * price[owner]
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

    target = build_atomically(path, fill)
    return HospitalStoreInfo(target, rows)
