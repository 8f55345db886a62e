"""The same verbs over DICOMweb (on dicomweb-client): QIDO-RS search, WADO-RS retrieve, STOW-RS.

A node's ``url`` is the service's base (Orthanc: ``http://host:8042/dicom-web``); its ``https``
options give the CA bundle to trust and our client certificate. Every HTTP failure (refused,
timed out, handshake, 4xx/5xx, an answer that is not DICOMweb) becomes one :class:`PacsError`
sentence naming the node. Retrieves follow :mod:`fpsm_core.pacs.retrieve`: instances land in a
hidden temporary folder and are renamed into ``dest/<StudyInstanceUID>`` only when all came.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian

from fpsm_core.pacs.client import LEVELS, Node, PacsError
from fpsm_core.pacs.retrieve import Cancel, Progress, RetrieveCancelled, Retrieved, Target
from fpsm_core.pacs.tls import handshake_sentence


def _client(node: Node) -> Any:
    import requests
    from dicomweb_client import DICOMwebClient

    if not node.url:
        raise PacsError(f"{node} has no DICOMweb url.")
    if not node.url.startswith(("http://", "https://")):
        raise PacsError(f"{node}: the DICOMweb url must start with http:// or https://.")
    session = requests.Session()
    if node.https is not None:
        for p in node.https.files():
            if not p.is_file():
                raise PacsError(f"the TLS file {p} does not exist.")
        if node.https.ca_file is not None:
            session.verify = str(node.https.ca_file)
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's verify (set
            # on many hospital machines); the node's own bundle must win. Proxies from the
            # environment are kept by copying them in before environment lookups are switched off.
            session.proxies.update(requests.utils.get_environ_proxies(node.url))
            session.trust_env = False
        if node.https.cert_file is not None:
            session.cert = (
                (str(node.https.cert_file), str(node.https.key_file))
                if node.https.key_file
                else str(node.https.cert_file)
            )
    client = DICOMwebClient(node.url, session=session, timeout=node.timeout_s)
    # dicomweb-client retries every failed request, exceptions included (a refused TLS
    # handshake too), 5 times with waits of 2, 4, 8 and 16 s: half a minute before a user learns
    # that a certificate is not trusted. Three attempts 0.5 and 1 s apart still ride out a busy
    # server's 429/503.
    client.set_http_retry_params(retry=True, max_attempts=3, wait_exponential_multiplier=250)
    return client


@contextmanager
def _http(node: Node, what: str) -> Iterator[None]:
    """Turn what requests and dicomweb-client raise into one sentence naming ``node``."""
    import requests

    try:
        yield
    except requests.exceptions.SSLError as exc:
        raise PacsError(handshake_sentence(f"{node}", exc)) from None
    except requests.exceptions.Timeout:
        raise PacsError(f"{node} did not answer the {what} within {node.timeout_s:g} s.") from None
    except requests.exceptions.ConnectionError:
        raise PacsError(f"cannot reach {node}: the connection was refused or lost.") from None
    except requests.exceptions.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        hint = {401: " (it wants credentials)", 403: " (access denied)", 404: " (not found)"}
        raise PacsError(
            f"{node} refused the {what} (HTTP {code}{hint.get(code, '') if isinstance(code, int) else ''})."
        ) from None
    except (ValueError, InvalidDicomError) as exc:
        raise PacsError(
            f"{node} answered the {what} with something that is not DICOMweb ({exc})."
        ) from None


_QIDO_DEFAULTS = {
    "STUDY": (
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "StudyDate",
        "AccessionNumber",
        "ModalitiesInStudy",
        "StudyDescription",
    ),
    "SERIES": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "Modality",
        "BodyPartExamined",
        "SeriesNumber",
        "PatientID",
        "StudyDate",
    ),
    "IMAGE": (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "PatientID",
    ),
}


def search(node: Node, level: str = "STUDY", **keys: str) -> list[Dataset]:
    """QIDO-RS at STUDY, SERIES or IMAGE level with the same DICOM keywords as C-FIND."""
    level = level.upper()
    if level not in LEVELS:
        raise PacsError(f"--level {level!r}: choose STUDY, SERIES or IMAGE.")
    client = _client(node)
    filters = {
        k: v for k, v in keys.items() if v and k not in ("StudyInstanceUID", "SeriesInstanceUID")
    }
    study = keys.get("StudyInstanceUID") or None
    series = keys.get("SeriesInstanceUID") or None
    fields = [f for f in _QIDO_DEFAULTS[level] if f not in filters]
    with _http(node, "QIDO-RS search"):
        if level == "STUDY":
            if study:
                filters["StudyInstanceUID"] = study
            found = client.search_for_studies(
                search_filters=filters, fields=fields, get_remaining=True
            )
        elif level == "SERIES":
            if series:
                filters["SeriesInstanceUID"] = series
            found = client.search_for_series(
                study, search_filters=filters, fields=fields, get_remaining=True
            )
        else:
            found = client.search_for_instances(
                study, series, search_filters=filters, fields=fields, get_remaining=True
            )
        return [Dataset.from_json(item) for item in found]


def retrieve(
    node: Node,
    dest: str | Path,
    study_uid: str,
    series_uid: str = "",
    sop_uid: str = "",
    *,
    progress: Progress | None = None,
    cancel: Cancel | None = None,
) -> Retrieved:
    """WADO-RS of a study, series or image into ``dest/<StudyInstanceUID>``, whole or not at all."""
    if not study_uid:
        raise PacsError("a retrieve needs a StudyInstanceUID (--study).")
    target = Target(study_uid, series_uid, sop_uid)
    keys = {"StudyInstanceUID": study_uid}
    if series_uid:
        keys["SeriesInstanceUID"] = series_uid
    wanted = [
        ds
        for ds in search(node, "IMAGE", **keys)
        if not sop_uid or str(ds.get("SOPInstanceUID", "")) == sop_uid
    ]
    if not wanted:
        raise PacsError(f"{node} has no instances of {target}.")
    client = _client(node)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".retrieve-", dir=out))
    try:
        received: list[Path] = []
        for n, item in enumerate(wanted):
            if cancel is not None and cancel():
                raise RetrieveCancelled(
                    f"the retrieve of {target} from {node} was cancelled; nothing was kept."
                )
            series = str(item.get("SeriesInstanceUID", series_uid))
            sop = str(item.SOPInstanceUID)
            with _http(node, "WADO-RS retrieve"):
                ds = client.retrieve_instance(study_uid, series, sop)
            if not target.matches(ds):
                raise PacsError(f"{node} answered the WADO-RS of {sop} with another instance.")
            _ensure_meta(ds)
            path = tmp / f"{sop}.dcm"
            ds.save_as(path.with_suffix(".part"), enforce_file_format=True)
            os.replace(path.with_suffix(".part"), path)
            received.append(path)
            if progress is not None:
                progress(n + 1, len(wanted))
        final = out / study_uid
        final.mkdir(parents=True, exist_ok=True)
        kept = []
        for path in received:
            os.replace(path, final / path.name)
            kept.append(final / path.name)
        return Retrieved(final, tuple(kept))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ensure_meta(ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta


def store(node: Node, paths: Iterable[str | Path]) -> list[str]:
    """STOW-RS the files; returns their SOP Instance UIDs. A non-DICOM file is one sentence."""
    datasets = []
    for raw in paths:
        path = Path(raw)
        try:
            datasets.append(dcmread(path))
        except (InvalidDicomError, OSError) as exc:
            raise PacsError(f"{path} is not a DICOM file that can be sent ({exc}).") from None
    if not datasets:
        return []
    client = _client(node)
    with _http(node, "STOW-RS store"):
        answer = client.store_instances(datasets)
    failed = list(answer.get("FailedSOPSequence", []) if answer is not None else [])
    if failed:
        first = failed[0]
        raise PacsError(
            f"{node} refused to store {len(failed)} of {len(datasets)} instance(s) "
            f"(first {first.get('ReferencedSOPInstanceUID', '?')}, reason "
            f"0x{int(first.get('FailureReason', 0)):04X})."
        )
    return [str(ds.SOPInstanceUID) for ds in datasets]
