"""The Comprehensive SR: a TID 1500 measurement report of every finding, for machines and readers.

One measurement group per finding, in rank order, each with its tracking identifier (the CXR-LT
name as text), the finding type (SNOMED CT where it has a code), the ensemble probability (DCM
122157 "Probability"), each member's probability, the decision threshold, whether the finding is
above it (Yes/No), each member's per-level logits (they sum to the member's logit) and, with CAMs,
each level's share of the positive evidence. Findings above threshold with a CAM region are
planar ROI groups whose SCOORD outlines the region on the source image. The algorithm
identification (name, version, ensemble members) is on every group; the device observer context
names the model. An input-validity verdict on the result, when there is one, is its own group.
"""

from __future__ import annotations

from typing import Any

import highdicom as hd
from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from fpsm_core.export import codes
from fpsm_core.export.common import MANUFACTURER, disclaimer_text, finish, series_number
from fpsm_core.export.evidence import Evidence, Region
from fpsm_core.export.source import ExportSource, describe_model


def _algorithm(result: Any) -> hd.sr.AlgorithmIdentification:
    name, version, members, disclaimer = describe_model(result)
    params = [
        f"member {n}: levels {'+'.join(map(str, lv))}"
        for n, lv in zip(members, getattr(result, "member_levels", ()), strict=False)
    ]
    # TID 1500 has no free-text slot at its root: the disclaimer travels with the algorithm.
    params.append(f"disclaimer: {disclaimer_text(disclaimer)}")
    return hd.sr.AlgorithmIdentification(name=name, version=version, parameters=params or None)


def _measurements(
    result: Any, finding: Any, ev: Evidence | None, algorithm: hd.sr.AlgorithmIdentification
) -> list[hd.sr.Measurement]:
    def num(name: CodedConcept, value: float, unit: CodedConcept = codes.NO_UNITS) -> Any:
        # The group names the algorithm; repeating it on every value would triple the report.
        return hd.sr.Measurement(name=name, value=float(value), unit=unit)

    out = [num(codes.PROBABILITY, finding.probability), num(codes.THRESHOLD, finding.threshold)]
    members = tuple(getattr(result, "member_names", ()))
    if len(members) > 1:
        out += [
            num(codes.member_probability(i, m), p)
            for i, (m, p) in enumerate(zip(members, finding.member_probabilities, strict=True))
        ]
    for i, (member, levels, logits) in enumerate(
        zip(members, result.member_levels, finding.level_logits, strict=True)
    ):
        out += [
            num(codes.level_logit(lv, i, member), x, codes.LOGIT)
            for lv, x in zip(levels, logits, strict=True)
        ]
    if ev is not None:
        out += [
            num(codes.level_share(lv), s)
            for lv, s in zip(ev.levels, ev.shares[finding.index], strict=True)
        ]
    return out


def _input_verdict(result: Any) -> str | None:
    """One line for the result's input-validity verdict (:class:`fpsm_core.trust.InputVerdict`)."""
    verdict = getattr(result, "input", None)
    return None if verdict is None else str(verdict.summary)


# highdicom describes projection images in the image library by ImagerPixelSpacing (TID 1603).
_PROJECTION = {"CR", "DX", "MG", "IO", "PX", "RG", "XA", "RF"}


def _library_ready(ref: Dataset) -> bool:
    """Whether highdicom can describe the source in the SR's image library."""
    if str(ref.get("Modality", "")) in _PROJECTION:
        return "ImagerPixelSpacing" in ref and "PatientOrientation" in ref
    return True


def structured_report(
    result: Any,
    source: ExportSource,
    ev: Evidence | None,
    regions: dict[str, Region],
) -> Dataset:
    """The Comprehensive SR data set for one result."""
    name, version, _, _ = describe_model(result)
    algorithm = _algorithm(result)
    ref = source.dataset
    groups: list[Any] = []
    for finding in result.findings:
        tracking = hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=finding.label)
        measurements = _measurements(result, finding, ev, algorithm)
        evaluations = [
            hd.sr.QualitativeEvaluation(
                name=codes.ABOVE, value=codes.YES if finding.above_threshold else codes.NO
            )
        ]
        reg = regions.get(finding.label)
        if reg is not None:
            groups.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    referenced_region=hd.sr.ImageRegion(
                        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                        graphic_data=reg.polygon,
                        source_image=hd.sr.SourceImageForRegion.from_source_image(ref),
                    ),
                    finding_type=codes.finding_code(finding.label),
                    algorithm_id=algorithm,
                    measurements=measurements,
                    qualitative_evaluations=evaluations,
                )
            )
        else:
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    finding_type=codes.finding_code(finding.label),
                    algorithm_id=algorithm,
                    measurements=measurements,
                    qualitative_evaluations=evaluations,
                    source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ref)],
                )
            )
    verdict = _input_verdict(result)
    if verdict is not None:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"Input validity: {verdict}"
                ),
                finding_type=codes.INPUT_VALIDITY,
                algorithm_id=algorithm,
                source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ref)],
            )
        )
    observer = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DEVICE,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=generate_uid(),
                name=name[:64],
                manufacturer_name=MANUFACTURER,
                model_name=version,
            ),
        )
    )
    report = hd.sr.MeasurementReport(
        observation_context=observer,
        procedure_reported=codes.CHEST_XRAY,
        imaging_measurements=groups,
        title=codes.MEASUREMENT_REPORT,
        referenced_images=[ref] if _library_ready(ref) else None,
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=[ref],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=series_number(source, "sr"),
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,
    )
    return finish(sr, source, f"AI result {name} (SR)", image=False)
