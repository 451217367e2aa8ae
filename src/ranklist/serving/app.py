"""The HTTP API and the page, over a SearchService (FastAPI; run with uvicorn by `ranklist serve`).

    POST /search?k=10        multipart images (field "file", one or several) -> top-k {id, label, score}
    POST /embed              multipart images -> evaluation embeddings
    GET  /items?offset&limit the indexed items;  GET /items/{id};  GET /items/{id}/image (thumbnail)
    GET  /items/{id}/neighbours?k=10
    GET  /browse?k=8         labelled index: queries with neighbours marked correct, worst first
    GET  /healthz, GET /info, GET / (the page)

Bad input is a 4xx JSON error {"detail": "..."}; the work of a request (decoding, the model, the
index) runs in a worker thread, so one request never blocks the event loop for the others.
"""

import base64
import hashlib
import re
import socket

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations (Request,
# imported inside create_app so that this module imports without the extra) as objects.
from collections.abc import Iterable
from importlib import resources
from typing import Any

from ranklist.errors import require
from ranklist.serving.service import SearchService
from ranklist.serving.uploads import InputError, ServeLimits, Upload

FILE_FIELDS = ("file", "files")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


def _page() -> str:
    return resources.files("ranklist.serving").joinpath("page.html").read_text(encoding="utf-8")


def content_security_policy(page: str) -> str:
    """The page's policy: only its own inline script (by hash) runs, and it talks only to this server,
    so a value from the data that slipped into the DOM as markup still could not run or send anything."""
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src 'self' blob:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> list[str]:
    """Host headers the server answers: its bound address, loopback names, this machine's names when it
    listens on every interface, and `extra` ("*" allows any). Any other Host is a DNS-rebinding page."""
    names = [bound, *LOOPBACK_NAMES, *extra]
    if bound in ("0.0.0.0", "::", ""):
        names += [socket.gethostname(), socket.getfqdn()]
    return sorted({name for name in names if name})


def create_app(service: SearchService, hosts: Iterable[str] = LOOPBACK_NAMES) -> Any:
    """The FastAPI app serving `service` to requests whose Host is one of `hosts`."""
    require("fastapi", "ranklist serve")
    require("python_multipart", "ranklist serve (uploads)")
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app = FastAPI(title="ranklist search", docs_url="/docs", redoc_url=None)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))
    limits, page_html = service.limits, _page()
    page_headers = {
        "Content-Security-Policy": content_security_policy(page_html),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    @app.exception_handler(InputError)
    async def input_error(_: Request, error: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.middleware("http")
    async def body_limit(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limits.max_request_bytes):
            return JSONResponse(
                {"detail": f"request body of {length} bytes is over the limit of {limits.max_request_bytes} bytes"},
                status_code=413,
            )
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html, headers=page_headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "items": len(service.index)}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return service_info(service)

    @app.post("/search")
    async def search(request: Request, k: int = 10) -> dict[str, Any]:
        service.check_k(k)
        uploads = await read_uploads(request, limits)
        results = await run_in_threadpool(service.search_images, uploads, k)
        return {"k": k, "results": [{"neighbours": hits} for hits in results]}

    @app.post("/embed")
    async def embed(request: Request) -> dict[str, Any]:
        uploads = await read_uploads(request, limits)
        embeddings = await run_in_threadpool(service.embed, uploads)
        return {"dim": int(embeddings.shape[1]), "embeddings": embeddings.round(7).tolist()}

    @app.get("/items")
    async def items(offset: int = 0, limit: int = 48) -> dict[str, Any]:
        return {"total": len(service.index), "offset": offset, "items": service.page(offset, limit)}

    @app.get("/items/{item_id:path}/image")
    async def item_image(item_id: str) -> Response:
        data = await run_in_threadpool(service.thumbnail, service.row(item_id))
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    @app.get("/items/{item_id:path}/neighbours")
    async def item_neighbours(item_id: str, k: int = 10) -> dict[str, Any]:
        row = service.row(item_id)
        hits = await run_in_threadpool(service.item_neighbours, row, k)
        return {"item": service.item(row), "k": k, "neighbours": hits}

    @app.get("/items/{item_id:path}")
    async def item(item_id: str) -> dict[str, Any]:
        return service.item(service.row(item_id))

    @app.get("/browse")
    async def browse(k: int = 8, limit: int = 50) -> dict[str, Any]:
        if not 1 <= limit <= limits.browse_queries:
            raise InputError(422, f"limit must be between 1 and {limits.browse_queries}, got {limit}")
        ranked = await run_in_threadpool(service.browse, k)
        return {"k": k, "queries": ranked[:limit], "total": len(ranked)}

    return app


def run_server(
    service: SearchService, host: str = "127.0.0.1", port: int = 8000, extra_hosts: Iterable[str] = ()
) -> None:
    """Serve until interrupted (uvicorn, one process; the model runs in its worker threads)."""
    uvicorn = require("uvicorn", "ranklist serve")
    uvicorn.run(create_app(service, allowed_hosts(host, extra_hosts)), host=host, port=port, log_level="info")


def service_info(service: SearchService) -> dict[str, Any]:
    """GET /info: what the server holds and its limits."""
    index, limits = service.index, service.limits
    return {
        "items": len(index),
        "kind": index.meta.get("kind"),
        "dim": index.dim,
        "runtime": service.embedder.runtime,
        "precision": service.embedder.precision,
        "labelled": index.labels is not None,
        "classes": len(service.class_names or []),
        "max_k": min(limits.max_k, len(index)),
        "max_files": limits.max_files,
        "max_upload_bytes": limits.max_upload_bytes,
        "model": None if index.model is None else index.model.to_dict(),
    }


async def read_uploads(request: Any, limits: ServeLimits) -> list[Upload]:
    """The request's image files, each read up to one byte over its limit (checked when decoded)."""
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise InputError(
            415, f"send the images as multipart/form-data (field 'file'), not {kind or 'no content type'!r}"
        )
    try:
        form = await request.form(max_files=limits.max_files, max_fields=limits.max_files + 8)
    except Exception as error:  # the multipart parser's own limits and framing errors
        raise InputError(400, f"bad multipart body: {getattr(error, 'detail', error)}") from None
    uploads = [value for key in FILE_FIELDS for value in form.getlist(key) if not isinstance(value, str)]
    if not uploads:
        raise InputError(400, "no image in the request: send one or more files in the field 'file'")
    return [
        Upload(await upload.read(limits.max_upload_bytes + 1), upload.filename or f"file {i + 1}", upload.content_type)
        for i, upload in enumerate(uploads)
    ]
