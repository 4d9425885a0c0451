"""Treatment-plan policies: territories, device catalogues and sizing rules, with their sources.

Every threshold and catalogue of a plan is a field of :class:`PlanPolicy` or
:class:`DevicePolicy` whose default cites where it comes from (``docs/plan.md``);
:meth:`PlanPolicy.to_json` is what ``summary.json`` reports under ``plan.policy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import input_error

__all__ = [
    "SUGGESTION",
    "TERRITORIES",
    "VENOUS_TERRITORIES",
    "DEVICES",
    "DevicePolicy",
    "PlanPolicy",
    "default_policy",
    "run_territory",
    "territory_for_preset",
    "with_policy",
]

SUGGESTION = "a suggestion for research and teaching, not a treatment decision"

TERRITORIES: tuple[str, ...] = ("coronary", "femoropopliteal", "iliac-artery", "iliac-vein", "femoral-vein")
VENOUS_TERRITORIES = frozenset({"iliac-vein", "femoral-vein"})

_PRESET_TERRITORY = {"coronary": "coronary", "femoropopliteal": "femoropopliteal", "iliac-vein": "iliac-vein"}
_VEIN_SEGMENT = {"iliac-vein": "common_iliac", "femoral-vein": "common_femoral"}


def territory_for_preset(preset: str) -> str:
    """The territory a phantom preset represents (``iliac-vein`` -> ``iliac-vein``, ...)."""
    return _PRESET_TERRITORY.get(preset, "coronary")


@dataclass(frozen=True)
class DevicePolicy:
    """How one kind of device is sized.

    Attributes
    ----------
    type : str
        ``"stent"``, ``"balloon"``, ``"drug-coated balloon"``, ``"venous stent"``, ...
    diameter_basis : {"vessel", "lumen", "normal"}
        Mean EEM diameter, mean lumen diameter ((min + max) / 2, averaged over the landing
        zone's frames), or the equivalent diameter of the vein segment's normal area.
    diameter_from : {"distal", "proximal", "mean", "smaller", "larger"}
        Which landing zone's diameter is used (``mean`` of both; ignored for ``normal``).
    diameter_ratio : float
        Device-to-basis ratio (1.0 = 1:1).
    diameter_offset_mm : float
        Added after the ratio (oversizing of self-expanding stents).
    diameter_rounding : {"down", "nearest", "up"}
        To the catalogue of diameters.
    diameters_mm, lengths_mm : tuple of float
        Catalogue. The length is the span rounded up to the next catalogue length.
    source : str
        Where the sizing rule and catalogue come from.
    """

    type: str
    diameter_basis: str
    diameter_from: str
    diameter_ratio: float
    diameter_offset_mm: float
    diameter_rounding: str
    diameters_mm: tuple[float, ...]
    lengths_mm: tuple[float, ...]
    source: str


_CORONARY_DIAMETERS = (2.25, 2.5, 2.75, 3.0, 3.25, 3.5, 3.75, 4.0, 4.5, 5.0)
_VENOUS_DIAMETERS = (10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0, 24.0)
_VENOUS_LENGTHS = (40.0, 60.0, 80.0, 100.0, 120.0, 140.0, 160.0)
_VENOUS_SOURCE = (
    "venous stent to the segment normal: equivalent diameter of the Jayaraj 2021 normal area "
    "(common iliac 200 mm2 -> 16 mm, external iliac 150 -> 14, common femoral 125 -> 12, as Raju, "
    "J Vasc Surg Venous Lymphat Disord 2013;1:136 sizes them), rounded to the nearest size; "
    "catalogue: dedicated venous stents (Venovo, Abre, Vici IFU ranges)"
)

# sized to the normal area of the vein segment (the same in iliac and femoral veins)
_VENOUS_STENT = DevicePolicy(
    "venous stent",
    "normal",
    "mean",
    1.0,
    0.0,
    "nearest",
    _VENOUS_DIAMETERS,
    _VENOUS_LENGTHS,
    _VENOUS_SOURCE,
)

DEVICES: dict[str, tuple[DevicePolicy, ...]] = {
    "coronary": (
        DevicePolicy(
            "stent",
            "vessel",
            "distal",
            1.0,
            0.0,
            "down",
            _CORONARY_DIAMETERS,
            (8.0, 12.0, 15.0, 18.0, 23.0, 28.0, 33.0, 38.0, 48.0),
            "EAPCI 2018 consensus (Raber, EuroIntervention 2018;14:656): distal reference mean EEM "
            "diameter rounded down to the next stent size; catalogue: drug-eluting stent range",
        ),
        DevicePolicy(
            "drug-coated balloon",
            "lumen",
            "mean",
            1.0,
            0.0,
            "down",
            _CORONARY_DIAMETERS,
            (10.0, 15.0, 20.0, 25.0, 30.0, 40.0),
            "International DCB Consensus Group (Jeger, JACC Cardiovasc Interv 2020;13:1391): "
            "balloon-to-vessel ratio 0.8-1.0 to the reference lumen; ratio 1.0, rounded down",
        ),
    ),  # fmt: skip
    "femoropopliteal": (
        DevicePolicy(
            "drug-coated balloon",
            "vessel",
            "mean",
            1.0,
            0.0,
            "down",
            (4.0, 5.0, 6.0, 7.0),
            (40.0, 60.0, 80.0, 100.0, 120.0, 150.0, 200.0, 250.0),
            "SCAI/SVS peripheral IVUS roundtable (Secemsky, JSCAI 2024;3:101205): balloon 1:1 to "
            "the EEM diameter; mean of both landing zones, rounded down; catalogue: femoropopliteal "
            "DCB IFU ranges (IN.PACT Admiral, Lutonix)",
        ),
        DevicePolicy(
            "balloon",
            "vessel",
            "mean",
            1.0,
            0.0,
            "down",
            (3.0, 4.0, 5.0, 6.0, 7.0, 8.0),
            (20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 150.0, 200.0, 250.0, 300.0),
            "Secemsky 2024 roundtable: balloon 1:1 to the EEM diameter, rounded down",
        ),
        DevicePolicy(
            "stent",
            "vessel",
            "mean",
            1.0,
            1.0,
            "up",
            (5.0, 6.0, 7.0, 8.0),
            (40.0, 60.0, 80.0, 100.0, 120.0, 150.0, 200.0),
            "self-expanding nitinol stent IFUs: 1-2 mm larger than the reference vessel; mean EEM "
            "diameter + 1 mm, rounded up",
        ),
    ),  # fmt: skip
    "iliac-artery": (
        DevicePolicy(
            "stent",
            "vessel",
            "mean",
            1.0,
            0.0,
            "nearest",
            (6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0),
            (15.0, 19.0, 29.0, 39.0, 59.0, 79.0),
            "Secemsky 2024 roundtable: size to the EEM diameter of the reference; balloon-expandable "
            "(covered) iliac stent catalogue (VBX IFU range)",
        ),
    ),  # fmt: skip
    "iliac-vein": (
        _VENOUS_STENT,
        DevicePolicy(
            "venous stent (to the reference lumen)",
            "lumen",
            "larger",
            1.0,
            0.0,
            "up",
            _VENOUS_DIAMETERS,
            _VENOUS_LENGTHS,
            "venous stent to the healthy reference lumen: the larger landing zone's mean lumen "
            "diameter, rounded up (stents are not undersized in veins)",
        ),
    ),  # fmt: skip
    "femoral-vein": (
        _VENOUS_STENT,
    ),  # fmt: skip
}

_LANDING_ZONE_MM = {
    "coronary": (5.0, "ULTIMATE trial (Zhang, JACC 2018;72:3126): 5 mm reference segments at the stent edges"),
    "femoropopliteal": (10.0, "DCB IFUs (IN.PACT Admiral): treat 10 mm beyond each lesion end (no geographic miss)"),
    "iliac-artery": (10.0, "as femoropopliteal: 10 mm of healthy vessel at each end"),
    "iliac-vein": (10.0, "venous stenting practice (Raju 2013): land in normal-calibre vein; 10 mm chosen"),
    "femoral-vein": (10.0, "as iliac vein"),
}  # fmt: skip


@dataclass(frozen=True)
class PlanPolicy:
    """Thresholds, catalogues and rules of a treatment plan (see ``docs/plan.md``).

    Attributes
    ----------
    territory : str
        One of :data:`TERRITORIES`.
    device : DevicePolicy
    landing_zone_mm : float
        Shortest landing zone.
    landing_burden_percent : float
        Arteries: a landing-zone frame has plaque burden below this (the lesion threshold,
        Mintz 2001: 40 %).
    vein_healthy_share : float
        Veins: a landing-zone frame has a lumen area at least this share of the basis.
    vein_basis : {"reference", "normal"}
        Veins: the adjacent reference lumen (mean of the treated segment's references) or the
        segment normal area.
    vein_segment : str or None
        Veins: ``common_iliac``, ``external_iliac`` or ``common_femoral``.
    venous_normal_area_mm2 : dict of str to float
        Normal vein areas (Jayaraj 2021).
    landmark_rules : dict of str to str
        Landmark kind to ``"reach"`` (the device must reach it) or ``"not-cross"`` (the device
        stops at it). Side branches are never inside a landing zone.
    reach_overshoot_mm : float
        How far a device may pass a landmark it must reach.
    lesion_definition : dict of str to float
        The metric parameters that made the lesions (reported; the lesions come from ``metrics``).
    sources : dict of str to str
        Source of each value (filled by :func:`default_policy`).
    """

    territory: str
    device: DevicePolicy
    landing_zone_mm: float
    landing_burden_percent: float = 40.0
    vein_healthy_share: float = 0.8
    vein_basis: str = "reference"
    vein_segment: str | None = None
    venous_normal_area_mm2: dict[str, float] = field(
        default_factory=lambda: {"common_iliac": 200.0, "external_iliac": 150.0, "common_femoral": 125.0}
    )
    landmark_rules: dict[str, str] = field(
        default_factory=lambda: {"iliocaval_confluence": "reach", "inguinal_ligament": "not-cross"}
    )
    reach_overshoot_mm: float = 0.0
    lesion_definition: dict[str, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def venous(self) -> bool:
        return self.territory in VENOUS_TERRITORIES

    def to_json(self) -> dict[str, Any]:
        """Every value with its source: ``{name: {"value": v, "source": s}}``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if f.name == "device":
                value = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(value).items()}
                out["device"] = {"value": value, "source": value.pop("source")}
                continue
            out[f.name] = {"value": value, "source": self.sources.get(f.name, "")}
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> PlanPolicy:
        """The policy of a ``plan.policy`` block (the inverse of :meth:`to_json`)."""
        values = {k: v["value"] for k, v in doc.items()}
        device = dict(values.pop("device"))
        device["source"] = doc["device"]["source"]
        for key in ("diameters_mm", "lengths_mm"):
            device[key] = tuple(float(v) for v in device[key])
        sources = {k: v.get("source", "") for k, v in doc.items() if k != "device"}
        return cls(device=DevicePolicy(**device), sources=sources, **values)


def default_policy(
    territory: str, *, device: str | None = None, vein_segment: str | None = None
) -> PlanPolicy:
    """The default policy of a territory, with the sources of every value.

    Parameters
    ----------
    territory : str
        One of :data:`TERRITORIES`.
    device : str, optional
        A device type of that territory (the first listed is the default).
    vein_segment : str, optional
        Veins: overrides the territory's segment (``common_iliac`` for the iliac vein).

    Raises
    ------
    IVUSInputError
        Unknown territory or device.
    """
    if territory not in DEVICES:
        raise input_error(
            "parameters", "territory", f"{territory!r} is unknown", f"use one of {', '.join(TERRITORIES)}"
        )
    options = DEVICES[territory]
    chosen = options[0] if device is None else next((d for d in options if d.type == device), None)
    if chosen is None:
        raise input_error("parameters", "device", f"{device!r} is not planned in the {territory} territory",
                          f"use one of {', '.join(d.type for d in options)}")  # fmt: skip
    length, length_source = _LANDING_ZONE_MM[territory]
    sources = {
        "territory": "run option, manifest column or phantom preset",
        "landing_zone_mm": length_source,
        "landing_burden_percent": "METRICS.md: below the lesion threshold (Mintz 2001: 40 %); ULTIMATE accepts < 50 %",
        "vein_healthy_share": "chosen: 80 % of the basis is 'normal calibre' (no published cut-off); a parameter",
        "vein_basis": "METRICS.md: adjacent reference (Gagne, J Vasc Surg Venous Lymphat Disord 2017;5:678, "
                      "VIDIO) or the segment normal (Jayaraj 2021)",
        "vein_segment": "territory",
        "venous_normal_area_mm2": "Jayaraj, J Vasc Surg Venous Lymphat Disord 2021;9:1408",
        "landmark_rules": "venous stenting practice: reach the iliocaval confluence, stop at the inguinal "
                          "ligament unless disease continues (Raju 2013)",
        "reach_overshoot_mm": "chosen: end at the landmark (limits protrusion into the IVC)",
        "lesion_definition": "metric parameters: Mintz 2001 (burden 40 %, 3 mm, merge 1.5 mm, references "
        "within 10 mm); veins Gagne 2017 (50 % below the adjacent reference)",
    }  # fmt: skip
    segment = vein_segment or _VEIN_SEGMENT.get(territory)
    return PlanPolicy(territory=territory, device=chosen, landing_zone_mm=length, vein_segment=segment,
                      sources=sources)  # fmt: skip


def run_territory(territory: str | None, vein_segment: str | None) -> tuple[str, str | None]:
    """The territory of a run and its vein segment.

    Without a territory, a run analysed as a vein (``vein_segment``) is a vein of that
    segment, any other a coronary; a venous territory without a segment takes its own.

    Raises
    ------
    IVUSInputError
        Unknown territory.
    """
    if territory is None:
        if vein_segment is None:
            return "coronary", None
        return ("femoral-vein" if vein_segment == "common_femoral" else "iliac-vein"), vein_segment
    if territory not in DEVICES:
        raise input_error(
            "territory", territory, "is not a known territory", f"use one of {', '.join(TERRITORIES)}"
        )
    if territory in VENOUS_TERRITORIES:
        return territory, vein_segment or _VEIN_SEGMENT[territory]
    return territory, None


def with_policy(policy: PlanPolicy, **changes: Any) -> PlanPolicy:
    """A copy of ``policy`` with fields changed, their sources marked as user-set."""
    sources = dict(policy.sources)
    for key in changes:
        sources[key] = "user-set"
    return replace(policy, sources=sources, **changes)
