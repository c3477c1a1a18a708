"""The emulator's ASGI app: AHI's REST-JSON protocol, as botocore speaks it, over local stores.

Datastores are the folders ``<data-dir>/store/<datastore id>/`` the local store writes (import
with ``--datastore-id`` set to 32 hex digits). Paths and members follow the ``medical-imaging``
service model; errors carry ``x-amzn-ErrorType`` and a ``{"message"}`` body, which botocore turns
into ``ClientError`` codes. GetImageSetMetadata serves every version the local store keeps;
GetImageSet only the current one.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dicomweb_proxy.dicom import transfer_syntax as ts
from dicomweb_proxy.dicom.image_set import iter_instances
from dicomweb_proxy.stores.base import FrameNotFound, ImageSetNotFound, ImageSetSummary
from dicomweb_proxy.stores.local import LocalStore

from .faults import ERROR_STATUS, Faults
from .search import Catalog, SearchError, search

REGION = "us-east-1"
ACCOUNT = "000000000000"
_ID_CHARACTERS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")
_VERSION = re.compile(r"[0-9]+")  # ImageSetExternalVersionId
_FRAME_MEDIA_TYPES = {
    ts.JPEG_BASELINE: "image/jpeg",
    ts.JPEG_EXTENDED: "image/jpeg",
    ts.JPEG_2000_LOSSLESS: "image/j2c",
    ts.JPEG_2000: "image/j2c",
}


class DatastoreNotFound(LookupError):
    pass


class Emulator:
    """The datastores under *data_dir* and the faults to inject."""

    def __init__(self, data_dir: Path, faults: Faults | None = None) -> None:
        self.root = Path(data_dir) / "store"
        self.faults = faults or Faults()
        self._datastores: dict[str, tuple[LocalStore, Catalog]] = {}

    def store(self, datastore_id: str) -> LocalStore:
        return self._open(datastore_id)[0]

    def catalog(self, datastore_id: str) -> Catalog:
        return self._open(datastore_id)[1]

    def _open(self, datastore_id: str) -> tuple[LocalStore, Catalog]:
        if datastore_id not in self._datastores:
            valid = len(datastore_id) == 32 and set(datastore_id) <= _ID_CHARACTERS
            if not valid or not (self.root / datastore_id / "imagesets").is_dir():
                raise DatastoreNotFound(f"datastore {datastore_id} not found")
            store = LocalStore(self.root, datastore_id, durable=False)
            self._datastores.setdefault(datastore_id, (store, Catalog(store)))
        return self._datastores[datastore_id]


def ahi_error(error: str, message: str) -> Response:
    return JSONResponse(
        {"message": message},
        status_code=ERROR_STATUS[error],
        headers={"x-amzn-ErrorType": error, "x-amzn-RequestId": str(uuid.uuid4())},
    )


Handler = Callable[[Emulator, dict[str, str], dict[str, Any], dict[str, Any]], Response]


def operation(name: str, handler: Handler) -> Callable[[Request], Any]:
    """An endpoint for AHI operation *name*: faults first, then *handler* in a worker thread
    with (emulator, path parameters, query parameters, JSON body)."""

    async def endpoint(request: Request) -> Response:
        emulator: Emulator = request.app.state.emulator
        raw = await request.body()
        delay, error = emulator.faults.on_call(name)
        if delay:
            await asyncio.sleep(delay)
        if error:
            return ahi_error(error, f"{error} injected by the emulator")
        try:
            body = orjson.loads(raw) if raw else {}
            return await run_in_threadpool(
                handler, emulator, request.path_params, dict(request.query_params), body
            )
        except (ImageSetNotFound, FrameNotFound, DatastoreNotFound) as missing:
            return ahi_error("ResourceNotFoundException", str(missing))
        except (SearchError, orjson.JSONDecodeError) as invalid:
            return ahi_error("ValidationException", str(invalid))

    return endpoint


def get_image_set_metadata(
    emulator: Emulator, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> Response:
    store = emulator.store(path["datastoreId"])
    image_set_id = path["imageSetId"]
    version = query.get("version")
    if version is not None and not _VERSION.fullmatch(version):
        return ahi_error("ValidationException", f"version {version!r} is not a number")
    return Response(
        store.get_image_set_metadata_gzip(image_set_id, int(version) if version else None),
        media_type="application/json",
        headers={"Content-Encoding": "gzip"},
    )


def get_image_frame(
    emulator: Emulator, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> Response:
    store = emulator.store(path["datastoreId"])
    image_set_id, frame_id = path["imageSetId"], str(body.get("imageFrameId", ""))
    data = store.get_image_frame(image_set_id, frame_id)
    return Response(data, media_type=_frame_media_type(store, image_set_id, frame_id))


def get_image_set(
    emulator: Emulator, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> Response:
    datastore_id, image_set_id = path["datastoreId"], path["imageSetId"]
    summary = _check_version(emulator.store(datastore_id), image_set_id, query)
    return JSONResponse(
        {
            "datastoreId": datastore_id,
            "imageSetId": image_set_id,
            "versionId": str(summary.version),
            "imageSetState": "ACTIVE",
            "imageSetWorkflowStatus": "CREATED" if summary.version == 1 else "UPDATED",
            "createdAt": summary.created_at.timestamp(),
            "updatedAt": summary.updated_at.timestamp(),
            "imageSetArn": f"{_arn(datastore_id)}/imageset/{image_set_id}",
            "isPrimary": True,
        }
    )


def search_image_sets(
    emulator: Emulator, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> Response:
    catalog = emulator.catalog(path["datastoreId"])
    try:
        max_results = int(query.get("maxResults", 50))
    except ValueError:
        raise SearchError("maxResults must be a number") from None
    return JSONResponse(
        search(catalog.entries(), body, max_results=max_results, next_token=query.get("nextToken"))
    )


def delete_image_set(
    emulator: Emulator, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> Response:
    datastore_id, image_set_id = path["datastoreId"], path["imageSetId"]
    emulator.store(datastore_id).delete_image_set(image_set_id)
    return JSONResponse(
        {
            "datastoreId": datastore_id,
            "imageSetId": image_set_id,
            "imageSetState": "DELETED",
            "imageSetWorkflowStatus": "DELETED",
        }
    )


def get_datastore(
    emulator: Emulator, path: dict[str, str], query: dict[str, str], body: dict[str, Any]
) -> Response:
    datastore_id = path["datastoreId"]
    store = emulator.store(datastore_id)
    created = store.root.stat().st_ctime
    return JSONResponse(
        {
            "datastoreProperties": {
                "datastoreId": datastore_id,
                "datastoreName": datastore_id,
                "datastoreStatus": "ACTIVE",
                "datastoreArn": _arn(datastore_id),
                "createdAt": created,
                "updatedAt": created,
            }
        }
    )


def _check_version(store: LocalStore, image_set_id: str, query: dict[str, str]) -> ImageSetSummary:
    summary = store.get_image_set(image_set_id)
    if "version" in query and query["version"] != str(summary.version):
        raise ImageSetNotFound(f"{image_set_id} version {query['version']}")
    return summary


def _frame_media_type(store: LocalStore, image_set_id: str, frame_id: str) -> str:
    for entry in iter_instances(store.get_image_set_metadata(image_set_id)):
        if any(frame.get("ID") == frame_id for frame in entry.image_frames):
            syntax = entry.stored_transfer_syntax_uid or ts.HTJ2K_LOSSLESS_RPCL
            return _FRAME_MEDIA_TYPES.get(syntax, "application/octet-stream")
    return "application/octet-stream"


def _arn(datastore_id: str) -> str:
    return f"arn:aws:medical-imaging:{REGION}:{ACCOUNT}:datastore/{datastore_id}"


async def faults_endpoint(request: Request) -> Response:
    """GET the faults, POST new ones (replacing all), DELETE them."""
    faults: Faults = request.app.state.emulator.faults
    if request.method == "POST":
        try:
            faults.configure(orjson.loads(await request.body()))
        except (ValueError, TypeError, AttributeError) as error:
            return JSONResponse({"message": str(error)}, status_code=400)
    elif request.method == "DELETE":
        faults.configure({})
    return JSONResponse(faults.to_json())


async def calls_endpoint(request: Request) -> Response:
    """GET the number of calls per operation so far; DELETE resets them."""
    faults: Faults = request.app.state.emulator.faults
    if request.method == "DELETE":
        faults.calls.clear()
    return JSONResponse(dict(faults.calls))


def create_app(data_dir: Path, faults: Faults | None = None) -> Starlette:
    image_set = "/datastore/{datastoreId}/imageSet/{imageSetId}"
    operations = [
        (f"{image_set}/getImageSetMetadata", "GetImageSetMetadata", get_image_set_metadata),
        (f"{image_set}/getImageFrame", "GetImageFrame", get_image_frame),
        (f"{image_set}/getImageSet", "GetImageSet", get_image_set),
        (f"{image_set}/deleteImageSet", "DeleteImageSet", delete_image_set),
        ("/datastore/{datastoreId}/searchImageSets", "SearchImageSets", search_image_sets),
    ]
    routes = [
        Route(path, operation(name, handler), methods=["POST"])
        for path, name, handler in operations
    ]
    routes += [
        Route("/datastore/{datastoreId}", operation("GetDatastore", get_datastore)),
        Route("/_emulator/faults", faults_endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/_emulator/calls", calls_endpoint, methods=["GET", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = Emulator(data_dir, faults)
    return app
